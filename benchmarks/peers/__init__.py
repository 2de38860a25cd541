"""Peers: other tools measured on the same work as Stormdrill's benchmarks (Chaos Toolkit)."""

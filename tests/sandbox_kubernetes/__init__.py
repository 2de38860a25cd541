"""Tests of the Kubernetes sandbox (API server, store, controller, seed, kubectl)."""

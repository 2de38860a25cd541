"""Sandbox: a local Kubernetes API server, a controller loop, simulated workloads and AWS (moto).

Used by the demo and the tests; product code never imports it.
"""

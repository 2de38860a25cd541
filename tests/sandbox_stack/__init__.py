"""Tests of the sandbox composition: moto seed, simulated workloads, `sandbox up`."""

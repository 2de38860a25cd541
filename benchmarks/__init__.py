"""Benchmarks: timed measurements of the engine (never run by pytest; see benchmarks/README.md)."""

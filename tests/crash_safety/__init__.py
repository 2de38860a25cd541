"""Crash-safety suite: SIGKILL the orchestrator anywhere, then prove `stormdrill recover` heals."""

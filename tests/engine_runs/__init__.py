"""End-to-end runs of the drill engine against the sandbox (real HTTP, real SQLite)."""

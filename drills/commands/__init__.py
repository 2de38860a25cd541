"""CLI command groups; `drills.cli` assembles them into the `stormdrill` app."""

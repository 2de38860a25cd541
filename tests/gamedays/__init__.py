"""Game days (issue 14): the service on a real SQLite store, and the CLI."""

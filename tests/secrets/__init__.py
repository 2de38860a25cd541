"""Secrets never reach a record, a report, a log line or a world-readable file."""

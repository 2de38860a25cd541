"""Drills: settings, the run store, the `stormdrill` CLI, the API and schedules."""

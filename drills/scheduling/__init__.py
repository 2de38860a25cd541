"""Schedules and game days (APScheduler computes fire times; fires call `drills.service`).

Empty until the scheduling issue; an import-linter contract keeps it independent of the
other entry points (`drills.commands`, `drills.api`, `drills.web`).
"""

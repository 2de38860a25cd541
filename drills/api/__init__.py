"""The REST API (FastAPI): routes that parse, call `drills.service` and return its views.

Empty until the API issue; an import-linter contract keeps it independent of the other
entry points (`drills.commands`, `drills.web`, `drills.scheduling`).
"""

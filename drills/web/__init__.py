"""The web pages (jinja2): views that parse, call `drills.service` and render its views.

Empty until the web issue; an import-linter contract keeps it independent of the other
entry points (`drills.commands`, `drills.api`, `drills.scheduling`).
"""

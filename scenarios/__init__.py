"""The scenario language: Scenario, Drill and Environment documents.

Owns the pydantic models, YAML loading with line marks, parameter substitution,
semantic lint, JSON Schema export and the bundled scenario library. Depends on
nothing else of Stormdrill's and on no cloud SDK.
"""

"""Errors: the reports layer's branch of Stormdrill's error tree.

Every error here derives from `ReportError`, itself a `StormdrillError`; messages
name the place (file, line, field) and the fix.
"""

from __future__ import annotations

from scenarios import errors


class ReportError(errors.StormdrillError):
    """The root of the reports layer's errors."""


class PolicyInvalid(ReportError):
    """A coverage policy file could not be read; the message names file, field and fix."""


class RunUnreadable(ReportError):
    """A run's record cannot be turned into a report (its scenario is gone, say)."""

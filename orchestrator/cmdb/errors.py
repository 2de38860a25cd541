"""CMDB errors: a catalog that cannot be loaded, a reference that names nothing.

Every error here derives from `CmdbError`, itself a `StormdrillError`. Errors a
person reads name the place (file:line:column and field path) and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from scenarios import errors


class CmdbError(errors.StormdrillError):
    """The root of the CMDB layer's errors."""


class CatalogInvalid(CmdbError):
    """One or more catalog documents are invalid; `problems` says where and why.

    `problems` holds the errors first, then any warnings found on the way.
    """

    def __init__(self, problems: Sequence[errors.Problem]) -> None:
        ordered = sorted(problems, key=lambda p: p.severity != "error")
        self.problems: list[errors.Problem] = ordered
        super().__init__("\n".join(str(p) for p in ordered))


class RefInvalid(CmdbError):
    """A string is not an entity reference (`[kind:][namespace/]name`)."""

    def __init__(self, raw: str, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(f"{raw!r} is not an entity reference: {reason}")


class UnknownRef(CmdbError):
    """A reference names no entity in the catalog; `suggestions` are close names."""

    def __init__(self, ref: str, *, suggestions: Sequence[str] = (), what: str = "entity") -> None:
        self.ref = ref
        self.suggestions = tuple(suggestions)
        message = f"no {what} {ref!r} in the catalog"
        if self.suggestions:
            message += f" (did you mean {', '.join(repr(s) for s in self.suggestions)}?)"
        super().__init__(message)

"""Entity references read from documents, remembered with the place they were written.

Invariants: a reference that cannot be parsed, or names a kind not allowed where it
is written, becomes an error `Problem` at its place; a parsed one is kept as a
`RefSite` so the linker can report it as dangling (file:line) if nothing defines it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from orchestrator.cmdb import documents, errors, models
from scenarios import errors as scenario_errors


@dataclasses.dataclass(frozen=True)
class RefSite:
    """A reference and where it was written."""

    ref: models.EntityRef
    document: documents.Document
    path: documents.FieldPath


@dataclasses.dataclass
class RefReader:
    """Parses references for one load, collecting sites and problems (not shared)."""

    sites: list[RefSite] = dataclasses.field(default_factory=list)
    problems: list[scenario_errors.Problem] = dataclasses.field(default_factory=list)

    def read(
        self,
        document: documents.Document,
        path: documents.FieldPath,
        raw: str,
        *,
        default_kind: models.EntityKind | None,
        allowed: Collection[models.EntityKind],
        namespace: str = models.DEFAULT_NAMESPACE,
    ) -> models.EntityRef | None:
        """Parse `raw` written at `path`; None (and a problem) if it is not usable."""
        try:
            ref = models.EntityRef.parse(
                raw, default_kind=default_kind, default_namespace=namespace
            )
        except errors.RefInvalid as exc:
            self.problems.append(document.problem(path, f"{raw!r}: {exc.reason}"))
            return None
        if ref.kind not in allowed:
            kinds = " or ".join(sorted(k.value for k in allowed))
            self.problems.append(
                document.problem(path, f"{raw!r} is a {ref.kind.value}; this field takes a {kinds}")
            )
            return None
        self.sites.append(RefSite(ref, document, path))
        return ref

    def read_list(
        self,
        document: documents.Document,
        path: documents.FieldPath,
        raws: list[str],
        *,
        default_kind: models.EntityKind | None,
        allowed: Collection[models.EntityKind],
        namespace: str = models.DEFAULT_NAMESPACE,
    ) -> tuple[models.EntityRef, ...]:
        """Parse each reference of a list written at `path`, dropping unusable ones."""
        refs = []
        for index, raw in enumerate(raws):
            ref = self.read(
                document,
                (*path, index),
                raw,
                default_kind=default_kind,
                allowed=allowed,
                namespace=namespace,
            )
            if ref is not None:
                refs.append(ref)
        return tuple(dict.fromkeys(refs))

"""Entity references read from documents, remembered with the place they were written.

Invariants: a reference that cannot be parsed becomes an error `Problem` at its place; one
naming a kind the field does not expect is an error in Stormdrill's own fields (annotations,
OnCall documents) but only a warning in Backstage's relation fields, where it is kept as
written (Backstage's processor defaults the kind and never checks it). A parsed reference
is kept as a `RefSite` with the kinds its field expects, so a dangling one is reported at
its file:line with a "did you mean" drawn only from those kinds.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Collection, Iterable, Mapping

from orchestrator.cmdb import documents, errors, models
from scenarios import errors as scenario_errors


@dataclasses.dataclass(frozen=True)
class RefSite:
    """A reference, where it was written, and the kinds its field expects."""

    ref: models.EntityRef
    document: documents.Document
    path: documents.FieldPath
    expected: frozenset[models.EntityKind] = frozenset()
    """Empty means any kind."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """How far a `RefReader` had got; see `RefReader.errors_since`."""

    problems: int
    sites: int


@dataclasses.dataclass
class RefReader:
    """Parses references for one load, collecting sites and problems (not shared)."""

    sites: list[RefSite] = dataclasses.field(default_factory=list)
    problems: list[scenario_errors.Problem] = dataclasses.field(default_factory=list)

    def checkpoint(self) -> Checkpoint:
        """Where the reader is now, to tell later what one entity added."""
        return Checkpoint(problems=len(self.problems), sites=len(self.sites))

    def errors_since(self, checkpoint: Checkpoint) -> list[scenario_errors.Problem]:
        """The error-severity problems added after `checkpoint`."""
        return [p for p in self.problems[checkpoint.problems :] if p.severity == "error"]

    def forget_sites_since(self, checkpoint: Checkpoint) -> None:
        """Drop the sites read after `checkpoint` (their entity was refused)."""
        del self.sites[checkpoint.sites :]

    def read(
        self,
        document: documents.Document,
        path: documents.FieldPath,
        raw: str,
        *,
        default_kind: models.EntityKind | None,
        allowed: Collection[models.EntityKind],
        namespace: str = models.DEFAULT_NAMESPACE,
        lenient_kind: bool = False,
    ) -> models.EntityRef | None:
        """Parse `raw` written at `path`; None (and an error) if it is not usable.

        A reference of a kind outside `allowed` is an error, or with `lenient_kind` (a
        Backstage relation field) a warning, the reference being kept as written.
        """
        try:
            ref = models.EntityRef.parse(
                raw, default_kind=default_kind, default_namespace=namespace
            )
        except errors.RefInvalid as exc:
            self.problems.append(document.problem(path, f"{raw!r}: {exc.reason}"))
            return None
        expected = frozenset(allowed)
        if ref.kind not in expected:
            kinds = " or ".join(sorted(k.value for k in expected))
            field = documents.format_path(path[:2] if path[:1] == ("spec",) else path)
            if not lenient_kind:
                self.problems.append(
                    document.problem(
                        path, f"{raw!r} is a {ref.kind.value}; this field takes a {kinds}"
                    )
                )
                return None
            self.problems.append(
                document.problem(
                    path,
                    f"{raw!r} is a {ref.kind.value}; {field} normally names a {kinds}."
                    " Kept as written, as Backstage does",
                    severity="warning",
                )
            )
        self.sites.append(RefSite(ref, document, path, expected))
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
        lenient_kind: bool = False,
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
                lenient_kind=lenient_kind,
            )
            if ref is not None:
                refs.append(ref)
        return tuple(dict.fromkeys(refs))


def dangling(
    sites: Iterable[RefSite],
    *,
    known: Collection[models.EntityRef],
    refused: Mapping[models.EntityRef, models.SourceLocation] | None = None,
) -> list[scenario_errors.Problem]:
    """A warning for each site whose reference names no entity in `known`.

    A reference to a refused entity says so (and where); any other carries a "did you
    mean" only among the kinds its field expects (an owner is never offered a component).
    """
    refused = refused or {}
    problems = []
    for site in sites:
        if site.ref in known:
            continue
        where = refused.get(site.ref)
        if where is not None:
            problems.append(
                site.document.problem(
                    site.path,
                    f"{str(site.ref)!r} was refused (see its error at {where});"
                    " this reference is not followed",
                    severity="warning",
                )
            )
            continue
        suggestion = suggest(site.ref, known=known, kinds=site.expected)
        problems.append(
            site.document.problem(
                site.path,
                f"dangling reference: no entity {str(site.ref)!r} in the catalog",
                hint=f"did you mean {suggestion!r}?" if suggestion else "",
                severity="warning",
            )
        )
    return problems


def suggest(
    ref: models.EntityRef,
    *,
    known: Iterable[models.EntityRef],
    kinds: Collection[models.EntityKind] = (),
) -> str | None:
    """The closest entity of one of `kinds` (any kind when empty) to `ref`, if any is close.

    The same name in another namespace or of another allowed kind comes first, then the
    closest spelling of the name (the same namespace first).
    """
    candidates = sorted(r for r in known if not kinds or r.kind in kinds)
    same_name = [r for r in candidates if r.name == ref.name and r != ref]
    if same_name:
        return str(same_name[0])
    by_name: dict[str, models.EntityRef] = {}
    for candidate in sorted(candidates, key=lambda r: (r.namespace != ref.namespace, r)):
        by_name.setdefault(candidate.name, candidate)
    close = difflib.get_close_matches(ref.name, list(by_name), n=1, cutoff=0.6)
    return str(by_name[close[0]]) if close else None

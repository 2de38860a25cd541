"""Truck factor: how many people must leave before most of a path's code has no author left.

Degree of authorship (Fritz et al.; Avelino et al., "A novel approach for estimating truck
factors", ICPC 2016), for developer d and file f:

    DOA(d, f) = 3.293 + 1.098 * FA + 0.164 * DL - 0.321 * ln(1 + AC)

FA is 1 when d created f, DL the number of commits of d touching f, AC the number of commits
of everyone else touching f. d is an *author* of f when DOA(d, f) > 3.293 and DOA(d, f) is
more than 0.75 of the highest DOA on f. The truck factor is found greedily: remove the
author of the most files, again and again, until more than half of the files have no
author left; the number removed is the truck factor.

Invariants: only files present at HEAD under the path count; merges are skipped; renames
are not followed (a renamed file starts a new history); a file deleted and re-created starts
afresh. `already_gone` people are removed first and do not count (the absence under study).
Pure functions, except `read_history`, which runs `git log` (read-only).
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from orchestrator.providers.people import errors

DOA_BASE = 3.293
DOA_FA = 1.098
DOA_DL = 0.164
DOA_AC = 0.321
NORMALISED_THRESHOLD = 0.75
ORPHAN_SHARE = 0.5
"""The truck factor is reached when more than this share of files has no author left."""

_COMMIT = "\x00"
_FIELD = "\x1f"


@dataclasses.dataclass(frozen=True)
class FileHistory:
    """Who created a file and how many commits each person made to it."""

    path: str
    creator: str | None
    commits: Mapping[str, int]


@dataclasses.dataclass(frozen=True)
class TruckFactor:
    """The truck factor of a set of files and the people whose loss reaches it."""

    value: int
    files: int
    removed: tuple[str, ...]
    """The people removed greedily (after `already_gone`), in order."""
    orphaned_share: float
    """The share of files left without an author once `removed` are gone."""


def doa(*, created: bool, deliveries: int, others: int) -> float:
    """The degree of authorship of one developer on one file."""
    return (
        DOA_BASE
        + DOA_FA * (1 if created else 0)
        + DOA_DL * deliveries
        - DOA_AC * math.log(1 + others)
    )


def authors(history: FileHistory) -> frozenset[str]:
    """The authors of one file by normalised degree of authorship."""
    total = sum(history.commits.values())
    scores = {
        person: doa(created=person == history.creator, deliveries=count, others=total - count)
        for person, count in history.commits.items()
    }
    if not scores:
        return frozenset()
    best = max(scores.values())
    return frozenset(
        person
        for person, score in scores.items()
        if score > DOA_BASE and best > 0 and score / best > NORMALISED_THRESHOLD
    )


def truck_factor(
    files: Mapping[str, Collection[str]], *, already_gone: Collection[str] = ()
) -> TruckFactor:
    """Greedy truck factor of `files` (path -> its authors), `already_gone` removed first."""
    remaining = {path: set(people) - set(already_gone) for path, people in files.items()}
    total = len(remaining)

    def orphaned() -> float:
        if not total:
            return 1.0
        return sum(1 for people in remaining.values() if not people) / total

    removed: list[str] = []
    while orphaned() <= ORPHAN_SHARE:
        counts: dict[str, int] = {}
        for people in remaining.values():
            for person in people:
                counts[person] = counts.get(person, 0) + 1
        if not counts:
            break
        top = min(counts, key=lambda person: (-counts[person], person))
        removed.append(top)
        for people in remaining.values():
            people.discard(top)
    return TruckFactor(
        value=len(removed), files=total, removed=tuple(removed), orphaned_share=orphaned()
    )


def authorship(histories: Sequence[FileHistory]) -> dict[str, frozenset[str]]:
    """path -> authors, for every file."""
    return {history.path: authors(history) for history in histories}


Identify = Callable[[str, str], str]
"""Maps a commit's (author email, author name) to a person key (e.g. a CMDB user ref)."""


def _default_identity(email: str, name: str) -> str:
    return email.lower() or name


def read_history(
    repository: Path, path: str, *, identify: Identify = _default_identity
) -> list[FileHistory]:
    """The history of every file under `path` at HEAD of the git `repository` (read-only)."""
    present = set(_git(repository, "ls-files", "-z", "--", path).split("\0")) - {""}
    log = _git(
        repository,
        "log",
        "--no-merges",
        "--no-renames",
        "--reverse",
        "--format=%x00%ae%x1f%an",
        "--name-status",
        "--",
        path,
    )
    creators: dict[str, str | None] = {}
    commits: dict[str, dict[str, int]] = {}
    person = ""
    for line in log.splitlines():
        if line.startswith(_COMMIT):
            email, _, name = line[1:].partition(_FIELD)
            person = identify(email, name)
            continue
        status, _, changed = line.partition("\t")
        if not changed or not status:
            continue
        if status.startswith("D"):
            creators.pop(changed, None)
            commits.pop(changed, None)
            continue
        if status.startswith("A") or changed not in commits:
            creators[changed] = person if status.startswith("A") else creators.get(changed)
            commits.setdefault(changed, {})
        counts = commits[changed]
        counts[person] = counts.get(person, 0) + 1
    return [
        FileHistory(path=file, creator=creators.get(file), commits=dict(commits[file]))
        for file in sorted(commits)
        if file in present
    ]


def _git(repository: Path, *args: str) -> str:
    command = ["git", "-C", str(repository), "-c", "core.quotepath=off", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.GitFailed(f"git in {repository}: {exc}") from exc
    if done.returncode != 0:
        raise errors.GitFailed(
            f"git {' '.join(args[:1])} in {repository} failed: {done.stderr.strip()} (is it a "
            "git repository? set the analysis's 'repository' to a local clone)"
        )
    return done.stdout

"""Blameless lint: finds blame, hindsight and gaps in a post-mortem's Markdown.

Rules (each finding has a line, a rule id and a suggested rewording):
- `person-blame`: a person (a CMDB user's name, or "the engineer/operator/developer")
  is the subject of a failure verb ("alice forgot to…").
- `counterfactual`: "should have", "could have", "would have", "failed to", "if only"…
- `blocking-term`: "human error", "careless", "negligent"… in a cause field
  (Summary, What went wrong, Contributing factors).
- `hindsight`: "obviously", "simply", "clearly", "of course", "everyone knows"…
- `action-verb` / `action-owner` / `action-due`: an action item without a verb-first
  title, an owner, or a due date (YYYY-MM-DD).
- `timeline-evidence` / `timeline-order`: a timeline row without evidence, or earlier
  than the row above it.
- `missing-section`: a required section (`rendering.SECTIONS`) is missing.
- `single-root-cause`: "root cause" is named while fewer than two contributing factors
  are listed.
Inline code and fenced code blocks are quoted material (recorded messages, commands)
and are not checked for wording. Pure functions over text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from orchestrator.cmdb import models as cmdb_models
from reports import rendering


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem: where, which rule, what, and a blameless rewording to try."""

    line: int
    rule: str
    message: str
    suggestion: str

    def format(self, path: str) -> str:
        return f"{path}:{self.line}: {self.rule}: {self.message} (try: {self.suggestion})"


FAILURE_VERBS = (
    "failed",
    "forgot",
    "missed",
    "broke",
    "neglected",
    "ignored",
    "overlooked",
    "caused",
    "botched",
    "messed up",
    "screwed up",
    "didn't",
    "did not",
    "mistakenly",
    "wrongly",
    "should",
    "blew",
)
GENERIC_PEOPLE = (
    "the engineer",
    "the operator",
    "the developer",
    "the on-call",
    "the on-call engineer",
    "the admin",
    "the sre",
)
COUNTERFACTUALS = (
    "should have",
    "shouldn't have",
    "should not have",
    "could have",
    "would have",
    "ought to have",
    "failed to",
    "if only",
    "had we",
    "if we had",
)
BLOCKING_TERMS = (
    "human error",
    "operator error",
    "user error",
    "pilot error",
    "careless",
    "carelessness",
    "negligent",
    "negligence",
    "incompetent",
    "incompetence",
    "sloppy",
    "lazy",
    "stupid",
)
HINDSIGHT = (
    "obviously",
    "obvious",
    "simply",
    "clearly",
    "of course",
    "everyone knows",
    "trivially",
    "needless to say",
)
CAUSE_SECTIONS = frozenset({"summary", "what went wrong", "contributing factors"})
ACTION_VERBS = frozenset(
    {
        "add",
        "adjust",
        "align",
        "alert",
        "allow",
        "audit",
        "automate",
        "build",
        "change",
        "check",
        "clarify",
        "clean",
        "configure",
        "confirm",
        "consolidate",
        "create",
        "debug",
        "decommission",
        "define",
        "delete",
        "deploy",
        "design",
        "document",
        "drill",
        "enable",
        "enforce",
        "ensure",
        "establish",
        "evaluate",
        "expand",
        "extend",
        "fix",
        "harden",
        "implement",
        "improve",
        "increase",
        "install",
        "instrument",
        "introduce",
        "investigate",
        "limit",
        "lower",
        "make",
        "measure",
        "migrate",
        "monitor",
        "move",
        "page",
        "patch",
        "plan",
        "prevent",
        "raise",
        "reduce",
        "refactor",
        "remove",
        "rename",
        "repair",
        "replace",
        "require",
        "rerun",
        "reschedule",
        "restore",
        "retire",
        "review",
        "rewrite",
        "rotate",
        "run",
        "schedule",
        "separate",
        "set",
        "share",
        "simplify",
        "spread",
        "split",
        "standardise",
        "standardize",
        "stop",
        "streamline",
        "switch",
        "teach",
        "test",
        "track",
        "train",
        "tune",
        "update",
        "upgrade",
        "validate",
        "verify",
        "write",
    }
)

_CODE_SPAN = re.compile(r"`[^`]*`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SEPARATOR_ROW = re.compile(r"^\|?\s*:?-{3,}")


def _phrases(words: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


_COUNTERFACTUAL = _phrases(COUNTERFACTUALS)
_BLOCKING = _phrases(BLOCKING_TERMS)
_HINDSIGHT = _phrases(HINDSIGHT)
_VERBS = "|".join(re.escape(v).replace(r"\ ", r"\s+") for v in FAILURE_VERBS)


def people_names(catalog: cmdb_models.Catalog | None) -> list[str]:
    """The names to watch for: each CMDB user's ref name and display name."""
    if catalog is None:
        return []
    names: set[str] = set()
    for user in catalog.users.values():
        names.add(user.ref.name)
        if user.display_name:
            names.add(user.display_name)
    return sorted(names, key=len, reverse=True)


@dataclasses.dataclass(frozen=True)
class _Line:
    number: int
    text: str
    """The line with inline code blanked out."""
    section: str
    """The lower-cased `##` heading above it ('' before the first)."""


def _lines(markdown: str) -> list[_Line]:
    found: list[_Line] = []
    section = ""
    fenced = False
    for number, raw in enumerate(markdown.splitlines(), 1):
        if raw.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        heading = _HEADING.match(raw)
        if heading and len(heading[1]) == 2:
            section = heading[2].strip().lower()
        found.append(_Line(number, _CODE_SPAN.sub(lambda m: " " * len(m[0]), raw), section))
    return found


def lint(markdown: str, *, people: Sequence[str] = ()) -> list[Finding]:
    """Every finding in `markdown`, by line. `people`: names that must not take blame."""
    lines = _lines(markdown)
    findings: list[Finding] = []
    findings += _wording(lines, people)
    findings += _sections(lines)
    findings += _action_items(lines)
    findings += _timeline(lines)
    findings += _root_cause(lines)
    return sorted(findings, key=lambda f: (f.line, f.rule))


def _wording(lines: Sequence[_Line], people: Sequence[str]) -> list[Finding]:
    subjects = [re.escape(p) for p in people] + [re.escape(p) for p in GENERIC_PEOPLE]
    blame = (
        re.compile(
            rf"\b(?P<who>{'|'.join(subjects)})\b(?:\s+\w+){{0,2}}?\s+(?P<verb>{_VERBS})\b",
            re.IGNORECASE,
        )
        if subjects
        else None
    )
    found: list[Finding] = []
    for line in lines:
        if blame is not None:
            for match in blame.finditer(line.text):
                found.append(
                    Finding(
                        line.number,
                        "person-blame",
                        f"{match['who']!r} is the subject of {match['verb']!r}",
                        "describe what the system or process allowed, e.g. 'the deploy "
                        "pipeline let the change through without a canary'",
                    )
                )
        for match in _COUNTERFACTUAL.finditer(line.text):
            found.append(
                Finding(
                    line.number,
                    "counterfactual",
                    f"counterfactual {match[0]!r}",
                    "state what happened and what will change, e.g. 'the alert fired after "
                    "four samples; action: alert after two'",
                )
            )
        if line.section in CAUSE_SECTIONS:
            for match in _BLOCKING.finditer(line.text):
                found.append(
                    Finding(
                        line.number,
                        "blocking-term",
                        f"{match[0]!r} in a cause field ends the inquiry",
                        "name the condition that made the action possible, e.g. 'the runbook "
                        "did not say the order of the steps'",
                    )
                )
        for match in _HINDSIGHT.finditer(line.text):
            found.append(
                Finding(
                    line.number,
                    "hindsight",
                    f"hindsight word {match[0]!r}",
                    f"drop {match[0]!r}: say what was known at the time",
                )
            )
    return found


def _sections(lines: Sequence[_Line]) -> list[Finding]:
    present = {line.section for line in lines}
    present |= {s.split(":")[0] for s in present}
    last = lines[-1].number if lines else 1
    return [
        Finding(
            last,
            "missing-section",
            f"section '## {title}' is missing",
            f"add '## {title}'"
            + (" (close calls: what could have gone worse)" if "lucky" in title else ""),
        )
        for title in rendering.SECTIONS
        if title.lower() not in present and title.lower().split(":")[0] not in present
    ]


def _cells(text: str) -> list[str]:
    body = text.strip()
    body = body.removeprefix("|").removesuffix("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _table_rows(lines: Sequence[_Line], section: str) -> list[tuple[_Line, list[str]]]:
    rows = [
        line for line in lines if line.section == section and line.text.lstrip().startswith("|")
    ]
    if len(rows) < 2:
        return []
    return [
        (line, _cells(line.text))
        for line in rows[1:]
        if not _SEPARATOR_ROW.match(line.text.strip())
    ]


def _bullets(lines: Sequence[_Line], section: str) -> list[_Line]:
    return [
        line
        for line in lines
        if line.section == section and re.match(r"^\s*[-*+]\s+|^\s*\d+[.)]\s+", line.text)
    ]


def _action_items(lines: Sequence[_Line]) -> list[Finding]:
    found: list[Finding] = []
    for line, cells in _table_rows(lines, "action items"):
        title = cells[1] if len(cells) > 1 else ""
        owner = cells[2] if len(cells) > 2 else ""
        due = cells[3] if len(cells) > 3 else ""
        found += _check_action(line.number, title, owner, due)
    for line in _bullets(lines, "action items"):
        text = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?", "", line.text)
        owner_match = re.search(r"owner:\s*([^;,—|]+)", text, re.IGNORECASE)
        due_match = re.search(r"due:\s*(\S+)", text, re.IGNORECASE)
        title = re.split(r"\s+[—-]+\s+|\s*;\s*|\s+owner:", text, maxsplit=1, flags=re.I)[0]
        found += _check_action(
            line.number,
            title,
            owner_match[1].strip() if owner_match else "",
            due_match[1].strip(" .,;") if due_match else "",
        )
    return found


def _check_action(number: int, title: str, owner: str, due: str) -> list[Finding]:
    found: list[Finding] = []
    first = re.sub(r"[^a-z]", "", (title.split() or [""])[0].lower())
    if first not in ACTION_VERBS:
        found.append(
            Finding(
                number,
                "action-verb",
                f"action item {title.strip()!r} does not start with a verb",
                "start with what will be done, e.g. 'Add an alert on checkout 5xx'",
            )
        )
    if owner.strip() in ("", "-", "?", "tbd", "TBD"):
        found.append(
            Finding(number, "action-owner", "action item has no owner", "name the owning team")
        )
    if not _DATE.match(due.strip()):
        found.append(
            Finding(
                number,
                "action-due",
                f"action item due date {due.strip() or 'missing'!r} is not YYYY-MM-DD",
                "set a due date, e.g. 2025-07-01",
            )
        )
    return found


def _timeline(lines: Sequence[_Line]) -> list[Finding]:
    found: list[Finding] = []
    previous: datetime | None = None
    for line, cells in _table_rows(lines, "timeline"):
        evidence = cells[-1] if len(cells) > 1 else ""
        if evidence in ("", "-"):
            found.append(
                Finding(
                    line.number,
                    "timeline-evidence",
                    "timeline row has no evidence",
                    "link the journal entry, probe sample or event it comes from "
                    "(e.g. 'event #12')",
                )
            )
        match = _TIME.search(cells[0]) if cells else None
        if match is None:
            found.append(
                Finding(
                    line.number,
                    "timeline-order",
                    "timeline row has no UTC time",
                    "start the row with a time such as 2025-01-01 12:00:00Z",
                )
            )
            continue
        at = datetime.fromisoformat(match[0].replace("Z", "").replace(" ", "T"))
        if previous is not None and at < previous:
            found.append(
                Finding(
                    line.number,
                    "timeline-order",
                    f"{match[0]} is earlier than the row above",
                    "keep the timeline in time order",
                )
            )
        previous = at
    return found


def _root_cause(lines: Sequence[_Line]) -> list[Finding]:
    mentions = [line for line in lines if re.search(r"\broot\s+cause\b(?!s)", line.text, re.I)]
    if not mentions:
        return []
    factors = _bullets(lines, "contributing factors")
    factors += [line for line, _ in _table_rows(lines, "contributing factors")]
    if len(factors) >= 2:
        return []
    return [
        Finding(
            line.number,
            "single-root-cause",
            "a single root cause is named without contributing factors",
            "list the contributing factors (plural) under '## Contributing factors'",
        )
        for line in mentions
    ]

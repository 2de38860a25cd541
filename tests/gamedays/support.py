"""Game day documents for the tests: the bundled example, and variants of it written to tmp."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "drills" / "gameday_examples" / "checkout-gameday.gameday.yaml"
AZ_DRILL = ROOT / "drills" / "examples" / "checkout-az-drill.yaml"

IN_WINDOW = dt.datetime(2026, 12, 8, 9, 30, tzinfo=dt.UTC)
"""10:30 in Berlin: inside `document()`'s default window (10:00 to 13:00 Europe/Berlin),
when a game day may start."""

ALICE = "user:default/alice"  # facilitator
BOB = "user:default/bob"  # operator
DAVE = "user:default/dave"  # approver


def document(
    *,
    name: str = "checkout-gameday",
    gates: tuple[str, str, str] = ("auto", "manual", "approval"),
    participants: str | None = None,
    window: str = 'start: "2026-12-08T10:00:00"\n    end: "2026-12-08T13:00:00"',
) -> str:
    """A GameDay document of three drills (a Drill file, then two bundled scenarios)."""
    people = participants or (
        f"    - person: {ALICE}\n      roles: [facilitator]\n"
        f"    - person: {BOB}\n      roles: [operator]\n"
        f"    - person: {DAVE}\n      roles: [approver, service-owner]\n"
    )
    return (
        "apiVersion: stormdrill.dev/v1\n"
        "kind: GameDay\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        f"  window:\n    {window}\n    timezone: Europe/Berlin\n"
        "  services: [checkout]\n"
        "  channel: https://chat.example.com/channels/shop-oncall\n"
        f"  participants:\n{people}"
        "  drills:\n"
        f"    - drill: {AZ_DRILL}\n      gate: {gates[0]}\n"
        f"    - scenario: third-party-outage\n      environment: staging\n      gate: {gates[1]}\n"
        f"    - scenario: key-person-loss\n      environment: staging\n      gate: {gates[2]}\n"
    )


def window_around_now() -> str:
    """A `window:` start and end (UTC offsets) from an hour ago to two hours from now, for
    `document(window=…)`: a game day the real clock may start (the CLI and the API start at
    the time they are called)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=2)
    return f'start: "{start.isoformat()}"\n    end: "{end.isoformat()}"'


def write(folder: Path, text: str, name: str = "day.gameday.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path

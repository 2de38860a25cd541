"""A game day whose drills really run: people-only scenarios (no cluster, no cloud) over the
sandbox's sample CMDB, an Environment `test`, files written next to the game day."""

from __future__ import annotations

from pathlib import Path

from drills import settings
from sandbox import stack
from tests.gamedays.support import ALICE, BOB, DAVE

ERIN = "user:default/erin"  # observer
CAROL = "user:default/carol"  # operator, named in the short form `carol`

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: test
spec:
  timeScale: 0.01
  cmdb:
    backstage: [{catalog}]
"""

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: {name}
  labels:
    stormdrill.dev/failure-mode: key-person
spec:
  description: Someone is away; the team covers.
  failureMode: key-person
  hypothesis: The team covers without them.
  parameters:
    person:
      type: string
      default: {person}
  targets:
    absent:
      provider: people
      kind: person
      selector:
        refs: ["{{{{ person }}}}"]
      blastRadius:
        max: 1
  guardrails:
    environments: [{allowed}]
    maxDuration: 1h
  steps:
    - name: mark
      action: people.mark-unavailable
      target: absent
    - name: pause
      wait: 1s
  objectives:
    rto: 30m
"""


def write_world(folder: Path) -> None:
    """The Environment and the scenarios beside the game day: `away-dave` (dave absent),
    `away-carol` (carol, a participant named `carol`), `away-frank` (frank, who takes no
    part), `refused` (its guardrails refuse the Environment `test`)."""
    folder.mkdir(parents=True, exist_ok=True)
    catalog = stack.catalog_path().parent
    (folder / "test.environment.yaml").write_text(ENVIRONMENT.format(catalog=catalog))
    for name, person, allowed in (
        ("away-dave", "user:default/dave", "test"),
        ("away-carol", "user:default/carol", "test"),
        ("away-frank", "frank", "test"),
        ("refused", "frank", "production"),
    ):
        text = SCENARIO.format(name=name, person=person, allowed=allowed)
        (folder / f"{name}.scenario.yaml").write_text(text)


def document(
    *,
    name: str = "people-gameday",
    drills: tuple[tuple[str, str], ...] = (("away-dave", "auto"), ("away-frank", "auto")),
    window: str = 'start: "2026-12-08T10:00:00"\n    end: "2026-12-08T13:00:00"',
) -> str:
    """A GameDay document whose drills are the scenario files `drills` names (with their
    gates), each on `./test.environment.yaml`; relative paths, as people write them.
    `window` is its start and end (`support.window_around_now()` for the real clock)."""
    slots = "".join(
        f"    - scenario: ./{scenario}.scenario.yaml\n"
        "      environment: ./test.environment.yaml\n"
        f"      gate: {gate}\n"
        for scenario, gate in drills
    )
    return (
        "apiVersion: stormdrill.dev/v1\n"
        "kind: GameDay\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        f"  window:\n    {window}\n"
        "    timezone: Europe/Berlin\n"
        "  services: [payments]\n"
        "  channel: https://chat.example.com/channels/payments-gameday\n"
        "  participants:\n"
        f"    - person: {ALICE}\n      roles: [facilitator]\n"
        f"    - person: {BOB}\n      roles: [operator]\n"
        "    - person: carol\n      roles: [operator]\n"
        f"    - person: {DAVE}\n      roles: [approver, operator]\n"
        f"    - person: {ERIN}\n      roles: [observer]\n"
        f"  drills:\n{slots}"
    )


def settings_for(folder: Path, database_url: str) -> settings.Settings:
    """Settings whose reports go under `folder` (never the user's data directory)."""
    return settings.Settings.from_env(
        {
            "STORMDRILL_DATA_DIR": str(folder / "data"),
            "STORMDRILL_REPORTS_DIR": str(folder / "reports"),
            "STORMDRILL_DATABASE_URL": database_url,
        }
    )

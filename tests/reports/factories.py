"""Factories for report tests: a small CMDB, a scenario, and run records in a real journal.

Every run is built in a fresh SQLite journal (tmp file) with a stepping clock, so its
timeline is the same on every machine and the golden Markdown can be compared exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from orchestrator import journal, mutations, records, states
from orchestrator.cmdb import backstage
from orchestrator.cmdb import models as cmdb_models
from reports import evidence
from scenarios import loading, models, substituting

T0 = dt.datetime(2025, 3, 4, 10, 0, 0, tzinfo=dt.UTC)

CATALOG = """\
apiVersion: backstage.io/v1alpha1
kind: System
metadata: {name: shop}
spec: {owner: group:team-web}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: web
  title: Storefront
  annotations:
    stormdrill.dev/tier: "1"
    stormdrill.dev/rto: 15m
    stormdrill.dev/rto.availability-zone: 5m
spec:
  type: website
  lifecycle: production
  owner: group:team-web
  system: system:shop
  dependsOn: [component:api]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: api
  title: Order API
  annotations:
    stormdrill.dev/tier: "1"
    stormdrill.dev/rto: 10m
    stormdrill.dev/rpo: 5m
spec:
  type: service
  lifecycle: production
  owner: group:team-api
  system: system:shop
  dependsOn: [resource:db, resource:cardco]
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: db
  annotations:
    stormdrill.dev/tier: "1"
    stormdrill.dev/rto: 30m
spec:
  type: database
  owner: group:team-api
  system: system:shop
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: cardco
  annotations:
    stormdrill.dev/tier: "1"
    stormdrill.dev/vendor-cidrs: 198.51.100.0/24
    stormdrill.dev/vendor-ports: "443"
spec:
  type: vendor
  owner: group:team-api
  system: system:shop
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: reports
  annotations:
    stormdrill.dev/tier: "3"
spec:
  type: service
  lifecycle: production
  owner: group:team-web
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-web}
spec: {type: team, children: [], members: [ann]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-api}
spec: {type: team, children: [], members: [ben]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: ann}
spec: {profile: {displayName: Ann Lee}, memberOf: [team-web]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: ben}
spec: {profile: {displayName: Ben Ode}, memberOf: [team-api]}
"""

CYCLE_CATALOG = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: alpha, annotations: {stormdrill.dev/tier: "1"}}
spec: {type: service, lifecycle: production, owner: group:team-x, dependsOn: [component:beta]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: beta, annotations: {stormdrill.dev/tier: "2"}}
spec: {type: service, lifecycle: production, owner: group:team-x, dependsOn: [component:alpha]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: gamma, annotations: {stormdrill.dev/tier: "2"}}
spec: {type: service, lifecycle: production, owner: group:team-x, dependsOn: [component:beta]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-x}
spec: {type: team, children: []}
"""

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: zone-loss
spec:
  description: Taint the nodes of one zone.
  failureMode: availability-zone
  hypothesis: Losing one zone costs web at most a few failed health checks.
  parameters:
    zone: {type: string, default: zone-a}
    webUrl: {type: string, default: "http://127.0.0.1:1/web"}
  targets:
    zone-nodes:
      provider: kubernetes
      kind: node
      selector: {labels: {topology.kubernetes.io/zone: "{{ zone }}"}}
      blastRadius: {max: 2}
  steadyState:
    - name: web-healthy
      type: http
      with: {url: "{{ webUrl }}"}
  guardrails:
    environments: [staging]
    maxDuration: 30m
    abortWhen:
      - probe: web-healthy
  steps:
    - name: baseline
      probe: web-healthy
    - name: taint-zone
      action: kubernetes.nodes.taint
      target: zone-nodes
      with: {key: stormdrill.dev/outage, value: "{{ zone }}", effect: NoExecute}
    - name: hold
      wait: 5m
  objectives:
    rto: 10m
    rpo: 1m
  services:
    - component:default/web
"""


class StepClock:
    """A clock that moves 250 ms every time it is read."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(milliseconds=250)
        return self.now


def write_catalog(folder: Path, text: str = CATALOG) -> cmdb_models.Catalog:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog-info.yaml"
    path.write_text(text, encoding="utf-8")
    return backstage.load_catalog([path])


def scenario(folder: Path, **values: str) -> models.Scenario:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "zone-loss.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return substituting.render(loading.load_scenario(path), dict(values))


def open_store(tmp: Path, *, start: dt.datetime = T0) -> journal.Journal:
    return journal.open_store(f"sqlite:///{tmp / 'journal.db'}", clock=StepClock(start))


def _target(name: str) -> mutations.TargetRef:
    return mutations.TargetRef(provider="kubernetes", kind="node", name=name)


def record_run(
    store: journal.Journal,
    *,
    run_id: str = "run-golden",
    scenario_name: str = "zone-loss",
    deviate: bool = True,
    revert_fails: bool = False,
    started: dt.datetime = T0,
    failure_mode: str | None = None,
    impact: list[Mapping[str, mutations.JsonValue]] | None = None,
    rto_s: float = 1.5,
    probe_message: str = "GET http://127.0.0.1:1/web: status 503",
    scenario_source: str = "library/zone-loss.yaml",
) -> states.Run:
    """A finished run as the engine records it (deviated and aborted, or held)."""
    rid = states.RunId(run_id)
    owner = states.Owner(host="ci-host", pid=1, token="t")
    run = states.new_run(
        id=rid,
        scenario=scenario_name,
        environment="staging",
        environment_source="environments/staging.yaml",
        owner=owner,
        at=started,
        record=records.RunRecord.from_json(
            {
                "scenario_source": scenario_source,
                "drill": None,
                "parameters": {
                    "zone": "zone-a",
                    "webUrl": "https://svc:hunter2@web.internal/healthz",
                },
                "time_scale": 0.1,
                "approvals": ["user:default/ben"],
            }
        ),
    )
    store.create_run(run)

    def event(kind: str, message: str, **data: mutations.JsonValue) -> None:
        store.append_event(rid, kind=kind, message=message, data=data)

    event("state", "planning: resolving targets", state="planning")
    event(
        "guardrail",
        "environment: ok staging is allowed",
        rule="environment",
        ok=True,
        subject="staging",
    )
    event(
        "guardrail", "blast-radius: ok 2 of 6", rule="blast-radius", ok=True, subject="zone-nodes"
    )
    event("probe", "web-healthy ok", probe="web-healthy", ok=True, phase="before")
    event("state", "injecting: injecting faults", state="injecting")
    event("step", "step baseline (probe) started", step="baseline")
    event("step", "step baseline finished", step="baseline")
    event("step", "step taint-zone (action) started", step="taint-zone")
    entries = []
    for name in ("node-a-1", "node-a-2"):
        planned = mutations.PlannedMutation(
            step="taint-zone",
            target=_target(name),
            action="kubernetes.nodes.taint",
            params={"key": "stormdrill.dev/outage"},
            pre_state={},
            undo=mutations.UndoToken(action="kubernetes.nodes.taint", data={"node": name}),
        )
        entry = store.record_intent(rid, planned)
        event("mutation", f"intent #{entry.seq}: taint on {name}", seq=entry.seq, state="intended")
        store.mark_applied(entry.seq)
        event("mutation", f"applied #{entry.seq}: taint on {name}", seq=entry.seq, state="applied")
        entries.append(entry)
    t0 = store.events(rid)[-1].at
    event("step", "step taint-zone finished", step="taint-zone")
    event("step", "step hold (wait) started", step="hold")
    if deviate:
        for i in range(1, 3):
            event(
                "probe",
                f"web-healthy FAILED ({i}/2): {probe_message} token=abc123secret",
                probe="web-healthy",
                ok=False,
                phase="during",
            )
        event("guardrail", "abort: probe web-healthy failed 2 times", rule="abort-when", ok=False)
        event("abort", "probe web-healthy failed 2 times in a row", by="guardrail")
    else:
        event("probe", "web-healthy ok", probe="web-healthy", ok=True, phase="during")
    event("step", "step hold finished", step="hold")
    event("state", "rolling_back: undoing every fault", state="rolling_back")
    for entry in reversed(entries):
        event("revert", f"reverting #{entry.seq}", seq=entry.seq)
        if revert_fails and entry is entries[0]:
            store.mark_revert_failed(entry.seq, error="node gone: 404")
            event("mutation", f"REVERT FAILED #{entry.seq}", seq=entry.seq, state="revert_failed")
        else:
            store.mark_reverted(entry.seq)
            event("mutation", f"reverted #{entry.seq}", seq=entry.seq, state="reverted")
    event("state", "verifying: checking steady state is back", state="verifying")
    event("probe", "web-healthy ok", probe="web-healthy", ok=True, phase="after")
    final = states.RunState.ABORTED if deviate else states.RunState.COMPLETED
    if revert_fails:
        final = states.RunState.ROLLBACK_FAILED
    verdict = states.Verdict.DEVIATED if deviate else states.Verdict.HELD
    end = store.events(rid)[-1].at + dt.timedelta(milliseconds=250)
    record = run.record.to_json()
    record["impact"] = list(
        impact
        if impact is not None
        else [
            {
                "ref": "component:default/web",
                "tier": 1,
                "owner": "group:default/team-web",
                "distance": 0,
            }
        ]
    )
    record["planned_mutations"] = 2
    record["objectives"] = {
        "t0": t0.isoformat(),
        "achieved_rto_s": rto_s,
        "target_rto_s": 600.0,
        "scaled_target_rto_s": 60.0,
        "time_scale": 0.1,
        "stability_window_s": 1.0,
        "rto_met": rto_s <= 60.0,
    }
    finished = states.Run(
        id=rid,
        scenario=scenario_name,
        environment="staging",
        environment_source="environments/staging.yaml",
        state=final,
        started_at=started,
        updated_at=end,
        finished_at=end,
        owner=owner,
        reason="drill aborted and fully reverted" if deviate else "drill completed",
        verdict=verdict,
        ending=states.Ending(final.value) if final is not states.RunState.ROLLBACK_FAILED else None,
        abort_reason="probe web-healthy failed 2 times in a row" if deviate else None,
        record=records.RunRecord.from_json(record),
    )
    saved = store.save_run(finished, expected_state=states.RunState.PENDING)
    if failure_mode is not None:
        event(evidence.FACTS_KIND, "coverage facts", failure_mode=failure_mode, fingerprints={})
    return saved


KEY_PERSON_CATALOG = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  annotations:
    stormdrill.dev/tier: "1"
    stormdrill.dev/rto: 30m
    stormdrill.dev/rpo: 5m
spec:
  type: service
  lifecycle: production
  owner: group:team-payments
  dependsOn: [resource:payments-db]
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: payments-db
  annotations:
    stormdrill.dev/tier: "1"
spec:
  type: database
  owner: group:team-data
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
  annotations:
    stormdrill.dev/tier: "1"
spec:
  type: service
  lifecycle: production
  owner: group:team-checkout
  dependsOn: [component:payments]
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-payments}
spec: {type: team, children: [], members: [alice, bob, carol]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-data}
spec: {type: team, children: [], members: [dan]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-checkout}
spec: {type: team, children: [], members: [carol]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {profile: {displayName: Alice Ames}, memberOf: [team-payments]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bob}
spec: {profile: {displayName: Bob Berg}, memberOf: [team-payments]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: carol}
spec: {profile: {displayName: Carol Cho}, memberOf: [team-payments, team-checkout]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: dan}
spec: {profile: {displayName: Dan Dee}, memberOf: [team-data]}
"""

ANALYSIS_FINDINGS: tuple[dict[str, mutations.JsonValue], ...] = (
    {
        "rule": "runbook",
        "severity": "high",
        "service": "component:default/payments",
        "message": "the runbook of payments is kept by alice alone, who is absent; nobody else"
        " can edit it",
        "suggestion": "name a second runbook editor (stormdrill.dev/runbook-editors) and have"
        " them walk through the runbook",
    },
    {
        "rule": "on-call-coverage",
        "severity": "medium",
        "service": "component:default/payments",
        "message": "payments: on-call rotation payments layer primary keeps 1 responder(s) (bob)"
        " from 2025-03-04 10:00Z during the absence of alice",
        "suggestion": "add a responder to layer primary of rotation payments, or an override"
        " covering the absence",
    },
    {
        "rule": "on-call-coverage",
        "severity": "medium",
        "service": "resource:default/payments-db",
        "message": "payments-db: on-call rotation payments layer primary keeps 1 responder(s)"
        " (bob) from 2025-03-04 10:00Z during the absence of alice",
        "suggestion": "add a responder to layer primary of rotation payments, or an override"
        " covering the absence",
    },
)
"""Findings as `people.analyse-absence` journals them (see analysing.Finding.to_json)."""


def record_key_person_run(
    store: journal.Journal,
    *,
    run_id: str = "run-key-person",
    findings: tuple[Mapping[str, mutations.JsonValue], ...] = ANALYSIS_FINDINGS,
    ack: str | None = "bob",
    eligible: list[mutations.JsonValue] | None = None,
    objectives: Mapping[str, mutations.JsonValue] | None = None,
) -> states.Run:
    """A finished key-person run as the engine records it: analysis findings, alice marked
    absent, a manual step for team-payments' on-call acknowledged by `ack` ('auto' for
    --auto-ack; None: it times out; `eligible=[]`: nobody may act)."""
    rid = states.RunId(run_id)
    owner = states.Owner(host="ci-host", pid=1, token="t")
    run = states.new_run(
        id=rid,
        scenario="key-person-loss",
        environment="staging",
        environment_source="environments/staging.yaml",
        owner=owner,
        at=T0,
        record=records.RunRecord.from_json(
            {
                "scenario_source": "gone/key-person-loss.yaml",
                "parameters": {},
                "time_scale": 0.02,
            }
        ),
    )
    store.create_run(run)

    def event(kind: str, message: str, **data: mutations.JsonValue) -> None:
        store.append_event(rid, kind=kind, message=message, data=data)

    event("state", "injecting: injecting faults", state="injecting")
    event("step", "step analyse-absence (action) started", step="analyse-absence")
    for finding in findings:
        data = dict(finding)
        message = str(data.pop("message", ""))
        event("finding", message, step="analyse-absence", **data)
    planned = mutations.PlannedMutation(
        step="mark-unavailable",
        target=mutations.TargetRef(provider="people", kind="person", name="user:default/alice"),
        action="people.mark-unavailable",
        params={"reason": "drill"},
        pre_state={"available": True},
        undo=mutations.UndoToken(action="people.mark-unavailable", data={}),
    )
    entry = store.record_intent(rid, planned)
    store.mark_applied(entry.seq)
    event("mutation", f"applied #{entry.seq}: absence", seq=entry.seq, state="applied")
    t0 = store.events(rid)[-1].at
    who: list[mutations.JsonValue] = (
        eligible if eligible is not None else ["user:default/bob", "user:default/carol"]
    )
    event(
        "manual",
        "waiting for group:default/team-payments (on-call; may act: bob, carol): restore it",
        step="restore-payments",
        assignee="group:default/team-payments",
        role="on-call",
        timeout_s=36.0,
        evidence=["url"],
        eligible=who,
        absent=["user:default/alice"],
        eligibleFrom="on call at 10:00Z in rotation(s) payments",
        problem=None if who else "everyone who may act (alice) is absent",
    )
    if not who:
        event(
            "finding",
            "manual step restore-payments: nobody may act on it: everyone who may act (alice)"
            " is absent",
            step="restore-payments",
            rule="no-eligible-assignee",
            severity="high",
        )
    elif ack == "auto":
        event(
            "ack",
            "step restore-payments acknowledged automatically (--auto-ack)",
            step="restore-payments",
            by="stormdrill --auto-ack",
            automated=True,
            evidence="automated acknowledgement",
            waited_s=2.0,
        )
    elif ack is not None:
        event(
            "ack",
            f"step restore-payments acknowledged by {ack}: https://notes.example/inc-1",
            step="restore-payments",
            by=ack,
            evidence="https://notes.example/inc-1",
            automated=False,
        )
    if not who or ack is None:
        event(
            "finding",
            "manual step restore-payments timed out after 36.0s",
            step="restore-payments",
            rule="manual-timeout",
            severity="high",
        )
    store.mark_reverted(entry.seq)
    event("mutation", f"reverted #{entry.seq}", seq=entry.seq, state="reverted")
    end = store.events(rid)[-1].at + dt.timedelta(milliseconds=250)
    record = run.record.to_json()
    record["impact"] = [
        {
            "ref": "component:default/payments",
            "tier": 1,
            "owner": "group:default/team-payments",
            "distance": 0,
        },
        {
            "ref": "component:default/checkout",
            "tier": 1,
            "owner": "group:default/team-checkout",
            "distance": 1,
        },
    ]
    record["objectives"] = dict(
        objectives
        if objectives is not None
        else {
            "t0": t0.isoformat(),
            "achieved_rto_s": 0.5,
            "target_rto_s": 1800.0,
            "scaled_target_rto_s": 36.0,
            "rto_met": True,
            "achieved_rpo_s": 2.5,
            "target_rpo_s": 300.0,
            "scaled_target_rpo_s": 6.0,
            "rpo_met": True,
            "rpo_canary": {"probe": "payments-canary", "achieved_rpo_s": 2.5, "all_lost": False},
        }
    )
    timed_out = not who or ack is None
    final = states.RunState.ABORTED if timed_out else states.RunState.COMPLETED
    finished = states.Run(
        id=rid,
        scenario="key-person-loss",
        environment="staging",
        environment_source="environments/staging.yaml",
        state=final,
        started_at=T0,
        updated_at=end,
        finished_at=end,
        owner=owner,
        reason="drill completed",
        verdict=states.Verdict.INCONCLUSIVE if timed_out else states.Verdict.HELD,
        ending=states.Ending(final.value),
        abort_reason=None,
        record=records.RunRecord.from_json(record),
    )
    return store.save_run(finished, expected_state=states.RunState.PENDING)

"""`stormdrill demo`: the sandbox shop, the bundled library validated, and real drills run.

Starts the sandbox (Kubernetes API + controller, moto, health endpoints) in-process,
validates the scenario library and the sample CMDB against it, then runs:
1. `az-failure-kubernetes` end to end (zone drained, pods rescheduled, rollback, verify);
2. `az-power-loss-kubernetes` with checkout pinned to that zone (a misconfiguration the
   drill should catch): the checkout probe breaches, the guardrail aborts, rollback is clean;
3. `az-failure-aws` (subnets isolated, instances stopped, ASG zone removed, RDS failover);
4. `key-person-loss` (alice absent: analysis findings, RBAC and IAM access revoked, the
   on-call's manual step acknowledged automatically, everything reinstated).
Prints where the run records and reports are, and the one command that lists its runs.

Its store: when the state dir lies in a project's `.stormdrill/` folder (`make demo` uses
`.stormdrill/demo`), the runs go to that project's store (`.stormdrill/stormdrill.db`), so a
plain `stormdrill runs list` in the project shows them; any other state dir keeps its own
`stormdrill.db`, and the demo prints the `STORMDRILL_DATABASE_URL=…` that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import rich.console
import rich.panel
import typer

from drills import binding, settings
from drills.commands import documents, running
from drills.service import runs
from orchestrator import engine, events, journal, mutations
from orchestrator.cmdb import backstage
from sandbox import stack
from sandbox.kubernetes import resources
from scenarios import library

_console = rich.console.Console(highlight=False)

PIN_ZONE = "us-east-1a"
AUTO_ACK_S = 1.0
"""The key-person drill's manual step is acknowledged (as automated) after this delay."""


def demo(
    state_dir: Path = typer.Option(
        Path(".stormdrill/demo"), "--state-dir", help="Where to keep files."
    ),
) -> None:
    """Run the demo on the embedded sandbox (no cluster or cloud account needed)."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    here = running.load_settings()
    config = settings.Settings(
        data_dir=state_dir,
        database_url=demo_store_url(state_dir),
        reports_dir=state_dir / "reports",
        cmdb_paths=here.cmdb_paths,
        store_origin="the demo",
    )
    with stack.Sandbox(state_dir / "sandbox") as world:
        info = world.start()
        _console.print(
            rich.panel.Panel.fit(
                f"Sandbox up: Kubernetes {info.kube_server}, AWS {info.aws_endpoint_url}",
                title="stormdrill demo",
            )
        )
        _, problems = documents.check_paths([library.folder()])
        errors_found = [p for p in problems if p.severity == "error"]
        _console.print(
            f"Scenario library: {len(library.names())} scenarios, {len(errors_found)} error(s),"
            f" {len(problems) - len(errors_found)} warning(s)"
        )
        catalog = backstage.load_catalog([stack.catalog_path().parent])
        _console.print(
            f"CMDB: {len(catalog.services)} services, {len(catalog.groups)} teams,"
            f" {len(catalog.users)} people, {len(catalog.rotations)} on-call rotations"
        )
        env = str(info.environment)
        codes: dict[str, int] = {}
        with running.open_journal(config) as store:
            codes["az-failure-kubernetes"] = _drill(config, store, "az-failure-kubernetes", env)
            _pin_checkout(world, zone=PIN_ZONE)
            codes["az-power-loss-kubernetes (checkout pinned)"] = _drill(
                config, store, "az-power-loss-kubernetes", env, sets=[f"zone={PIN_ZONE}"]
            )
            _unpin_checkout(world)
            codes["az-failure-aws"] = _drill(config, store, "az-failure-aws", env)
            codes["key-person-loss"] = _drill(
                config,
                store,
                "key-person-loss",
                env,
                engine_config=engine.EngineConfig(auto_ack_s=AUTO_ACK_S),
            )
        _console.print(
            rich.panel.Panel.fit(
                "\n".join(f"{name}: exit {code}" for name, code in codes.items())
                + f"\nRun records: {settings.mask_url_password(config.database_url)}\n"
                f"Post-mortems and JUnit: {config.reports_dir}/<run id>/\n"
                f"Its runs: {list_command(config.database_url, here)}",
                title="demo results",
            )
        )
    expected = {
        "az-failure-kubernetes": engine.ExitCode.HELD,
        "az-power-loss-kubernetes (checkout pinned)": engine.ExitCode.ABORTED,
        "az-failure-aws": engine.ExitCode.HELD,
        "key-person-loss": engine.ExitCode.HELD,
    }
    if any(codes[name] != code for name, code in expected.items()):
        _console.print("[red]the demo did not go as expected[/red]")
        raise typer.Exit(1)


def demo_store_url(state_dir: Path) -> str:
    """The store the demo writes to: the project's when `state_dir` is inside the project's
    `.stormdrill/` folder, else `state_dir/stormdrill.db`."""
    project = settings.find_project(state_dir)
    if project is not None and state_dir.is_relative_to(project.data_dir):
        return project.database_url
    return f"sqlite:///{state_dir / settings.STORE_FILE}"


def list_command(database_url: str, here: settings.Settings) -> str:
    """The one command that lists the runs in `database_url` from the working directory
    (a password in the URL is shown as `***`)."""
    if here.database_url == database_url:
        return "stormdrill runs list"
    shown = settings.mask_url_password(database_url)
    return f"STORMDRILL_DATABASE_URL={shown} stormdrill runs list"


def _drill(
    config: settings.Settings,
    store: journal.Journal,
    scenario: str,
    env: str,
    *,
    sets: list[str] | None = None,
    engine_config: engine.EngineConfig | None = None,
) -> int:
    _console.rule(f"drill: {scenario} {' '.join(sets or [])}")
    request = runs.DrillRequest(target=scenario, environment=env, sets=tuple(sets or ()))
    prepared = runs.prepare(config, request)

    def listen(kind: str, message: str, _data: Mapping[str, mutations.JsonValue]) -> None:
        if kind != events.EventKind.PROBE:
            _console.print(
                f"  {kind:>9} {message}",
                markup=False,
                soft_wrap=True,
                style=running.LIVE_STYLES.get(kind, ""),
            )

    driven = runs.start(
        config,
        store,
        binding.make_registry(),
        prepared,
        trigger=engine.Trigger(kind=engine.TriggerKind.MANUAL, principal="stormdrill demo"),
        engine_config=engine_config,
        listener=listen,
    )
    running.summarise(driven.outcome, store)
    if driven.reports is not None:
        running.print_reports(driven.reports)
    return driven.exit_code


def _pin_checkout(world: stack.Sandbox, *, zone: str) -> None:
    """Put every checkout replica in one zone (the misconfiguration the second drill finds)."""
    _console.rule(f"setting up: checkout pinned to {zone} (all replicas in one zone)")
    assert world.store is not None
    world.store.patch(
        resource=resources.DEPLOYMENTS,
        namespace="shop",
        name="checkout",
        patch={
            "spec": {"template": {"spec": {"nodeSelector": {"topology.kubernetes.io/zone": zone}}}}
        },
    )
    world.wait_settled()


def _unpin_checkout(world: stack.Sandbox) -> None:
    assert world.store is not None
    world.store.patch(
        resource=resources.DEPLOYMENTS,
        namespace="shop",
        name="checkout",
        patch={"spec": {"template": {"spec": {"nodeSelector": None}}}},
    )
    world.wait_settled()

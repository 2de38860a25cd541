"""A game day's `spec.services` against the CMDB: stored as canonical refs, read as Backstage
reads refs (case-insensitive), an unknown one refused at file:line:column with close names,
from the service, the CLI (`--cmdb`, `STORMDRILL_CMDB`) and the API (the server's catalog)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import testclient
from typer import testing

from drills import cli
from drills.api import app as app_mod
from drills.api import deps
from drills.service import gamedays
from orchestrator import journal
from orchestrator.cmdb import backstage
from orchestrator.cmdb import models as cmdb_models
from sandbox import stack
from tests.api import conftest as api_conftest
from tests.engine_runs import support as run_support
from tests.gamedays import support

RUNNER = testing.CliRunner()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[journal.Journal]:
    with journal.open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture(scope="module")
def catalog() -> cmdb_models.Catalog:
    """The sample CMDB: checkout, payments, web, inventory; payments-db, payprovider."""
    return backstage.load_catalog([stack.catalog_path().parent])


def _with_services(services: str) -> str:
    return support.document().replace("  services: [checkout]\n", f"  services: {services}\n")


def test_services_are_stored_as_canonical_refs_of_the_catalog_whatever_their_case(
    store: journal.Journal, tmp_path: Path, catalog: cmdb_models.Catalog
) -> None:
    text = _with_services(
        "[Checkout, 'COMPONENT:Default/Payments', payments-db, component:default/checkout]"
    )

    day = gamedays.create(store, support.write(tmp_path, text), by="lead", catalog=catalog)

    assert day.services == (
        "component:default/checkout",
        "component:default/payments",
        "resource:default/payments-db",
    )
    assert gamedays.get(store, day.name).services == day.services


def test_an_unknown_service_is_refused_at_its_line_and_column_with_close_names(
    store: journal.Journal, tmp_path: Path, catalog: cmdb_models.Catalog
) -> None:
    text = _with_services("[checkout, chekout, group:team-payments]")
    path = support.write(tmp_path, text)
    written = "  services: [checkout, chekout, group:team-payments]"
    line = text.splitlines().index(written) + 1
    typo_at, group_at = written.index("chekout") + 1, written.index("group:") + 1

    with pytest.raises(gamedays.ServicesInvalid) as refused:
        gamedays.create(store, path, by="lead", catalog=catalog)

    typo, group = refused.value.problems
    assert (typo.file, typo.line, typo.column, typo.field) == (
        str(path),
        line,
        typo_at,
        "spec.services[1]",
    )
    assert typo.message == (
        "no service 'chekout' in the CMDB (did you mean 'component:default/checkout'?)"
    )
    assert "stormdrill cmdb show" in typo.hint
    assert str(typo).startswith(f"{path}:{line}:{typo_at}: spec.services[1]: no service 'chekout'")
    assert (group.line, group.column, group.field) == (line, group_at, "spec.services[2]")
    assert "is group:default/team-payments (a group), not a service" in group.message
    assert gamedays.list_gamedays(store) == []  # nothing stored


def test_without_a_catalog_services_are_accepted_as_canonical_refs(
    store: journal.Journal, tmp_path: Path
) -> None:
    text = _with_services("[Checkout, resource:Payments-DB, shop/Web]")

    day = gamedays.create(store, support.write(tmp_path, text), by="lead")

    assert day.services == (
        "component:default/checkout",
        "resource:default/payments-db",
        "component:shop/web",
    )


def test_without_a_catalog_what_is_no_service_ref_is_still_refused(
    store: journal.Journal, tmp_path: Path
) -> None:
    text = _with_services("[checkout, 'pay ments', 'user:alice']")

    with pytest.raises(gamedays.ServicesInvalid) as refused:
        gamedays.create(store, support.write(tmp_path, text), by="lead")

    spaced, person = refused.value.problems
    assert spaced.field == "spec.services[1]" and "is not an entity reference" in spaced.message
    assert person.field == "spec.services[2]" and "(a user), not a service" in person.message
    assert gamedays.list_gamedays(store) == []


def _cli(db_url: str, *args: str, **env: str) -> testing.Result:
    return RUNNER.invoke(cli.app, ["gamedays", *args], env={**run_support.cli_env(db_url), **env})


def test_the_cli_checks_services_against_cmdb_and_prints_each_problem_on_its_line(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    path = support.write(tmp_path, _with_services("[chekout, paymnets]"))
    catalog = str(stack.catalog_path().parent)

    refused = _cli(db_url, "create", str(path), "--cmdb", catalog)
    unchecked = _cli(db_url, "create", str(path))  # no catalog named: refs only

    assert refused.exit_code == 3
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 2, refused.stderr
    assert lines[0].startswith(f"error: {path}:")
    assert ": spec.services[0]: no service 'chekout' in the CMDB" in lines[0]
    assert "did you mean 'component:default/checkout'?" in lines[0]
    assert ": spec.services[1]: no service 'paymnets'" in lines[1]
    assert "'component:default/payments'" in lines[1]
    assert unchecked.exit_code == 0, unchecked.output


def test_the_cli_uses_the_catalog_of_stormdrill_cmdb_when_no_cmdb_is_given(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    catalog = str(stack.catalog_path().parent)
    bad = support.write(tmp_path, _with_services("[chekout]"), name="bad.gameday.yaml")
    good = support.write(tmp_path, _with_services("[Checkout]"), name="good.gameday.yaml")

    refused = _cli(db_url, "create", str(bad), STORMDRILL_CMDB=catalog)
    created = _cli(db_url, "create", str(good), STORMDRILL_CMDB=catalog)
    shown = _cli(db_url, "show", "checkout-gameday", "--format", "json")

    assert refused.exit_code == 3 and "no service 'chekout' in the CMDB" in refused.stderr
    assert created.exit_code == 0, created.output
    assert '"services": [\n    "component:default/checkout"\n  ]' in shown.stdout


@pytest.fixture
def client(tmp_path: Path) -> Iterator[testclient.TestClient]:
    """The API over the route tests' world, whose settings name the sample catalog."""
    root = tmp_path / "world"
    root.mkdir()
    world = api_conftest.build_world(root)
    app = app_mod.create_app(world.settings, world.api_settings(drive_runs=False))
    app.dependency_overrides[deps.get_principal] = lambda: api_conftest.ADMIN
    with testclient.TestClient(app) as test_client:
        yield test_client


def _api_document(services: str) -> str:
    text = _with_services(services)
    # the API reads only its folders: the world's Drill by name, its Environment `test`
    text = text.replace(f"    - drill: {support.AZ_DRILL}\n", "    - drill: weekly-absence\n")
    return text.replace("environment: staging", "environment: test")


def test_the_api_refuses_an_unknown_service_as_a_422_placing_it(
    client: testclient.TestClient,
) -> None:
    text = _api_document("[checkout, Chekout]")
    written = "  services: [checkout, Chekout]"
    line, column = text.splitlines().index(written) + 1, written.index("Chekout") + 1

    refused = client.post(
        "/api/v1/gamedays",
        params={"filename": "day.gameday.yaml"},
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    created = client.post(
        "/api/v1/gamedays",
        content=_api_document("[CHECKOUT, resource:payments-db]").encode(),
        headers={"Content-Type": "application/yaml"},
    )

    problem = api_conftest.problem_of(refused)
    assert refused.status_code == 422 and problem["type"].endswith("/invalid-document")
    assert problem["errors"] == [
        f"day.gameday.yaml:{line}:{column}: spec.services[1]: no service 'Chekout' in the CMDB"
        " (did you mean 'component:default/checkout'?) (name a Component or Resource of the"
        " CMDB; `stormdrill cmdb show` lists them)"
    ]
    assert created.status_code == 201, created.text
    assert created.json()["services"] == [
        "component:default/checkout",
        "resource:default/payments-db",
    ]

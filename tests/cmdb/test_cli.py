"""`stormdrill cmdb show` and `stormdrill cmdb impact`: output, formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from typer import testing

from drills.commands import cmdb
from tests.cmdb import factories as f

WIDE = {"COLUMNS": "200", "STORMDRILL_CMDB": ""}


def _run(*args: str, env: dict[str, str] | None = None) -> testing.Result:
    return testing.CliRunner().invoke(cmdb.app, list(args), env={**WIDE, **(env or {})})


def test_show_lists_every_service_in_a_table() -> None:
    result = _run("show", "--cmdb", str(f.SAMPLE))
    assert result.exit_code == 0, result.output
    for ref in ("web", "resource:payments-db", "team-storefront"):
        assert ref in result.stdout
    assert "30m (availability-zone 10m, third-party 1h)" in result.stdout
    assert result.stderr == ""


def test_show_json_lists_every_service_with_its_fields() -> None:
    result = _run("show", "--cmdb", str(f.SAMPLE), "--format", "json")
    assert result.exit_code == 0, result.output
    services = {s["ref"]: s for s in json.loads(result.stdout)["services"]}
    assert len(services) == 6
    payments = services["component:default/payments"]
    assert payments["tier"] == 1
    assert payments["objectives"]["rtoByMode"] == {"availability-zone": "10m", "third-party": "1h"}
    assert payments["vendors"] == [
        {"ref": "resource:default/payprovider", "cidrs": ["203.0.113.0/24"], "ports": [443]}
    ]
    assert payments["people"]["runbookEditors"] == ["user:default/alice"]


def test_show_one_service_in_detail_by_short_name() -> None:
    result = _run("show", "payments", "--cmdb", str(f.SAMPLE))
    assert result.exit_code == 0, result.output
    assert "payments (primary: alice, bob; secondary: carol)" in result.stdout
    assert "resource:payprovider 203.0.113.0/24 port 443" in result.stdout
    assert "used by" in result.stdout and "checkout" in result.stdout


def test_show_one_service_as_json() -> None:
    result = _run("show", "resource:payments-db", "--cmdb", str(f.SAMPLE), "--format", "json")
    assert result.exit_code == 0, result.output
    service = json.loads(result.stdout)
    assert service["ref"] == "resource:default/payments-db"
    assert service["usedBy"] == ["component:default/payments"]


def test_impact_lists_the_dependents_with_distances() -> None:
    result = _run("impact", "payments-db", "--cmdb", str(f.SAMPLE))
    assert result.exit_code == 0, result.output
    assert "Impact of losing resource:payments-db" in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    # ref, tier, hops, then the services between the target and the reached one
    assert rows["web"][:5] == ["web", "1", "3", "payments,", "checkout"]
    assert rows["payments"][:4] == ["payments", "1", "1", "-"]


def test_impact_at_80_columns_keeps_every_ref_whole() -> None:
    result = _run("impact", "payments-db", "--cmdb", str(f.SAMPLE), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert any("resource:payments-db" in line for line in lines[2:])
    assert any("team-storefront" in line for line in lines)
    assert "…" not in result.stdout


def test_impact_json_takes_several_targets_and_a_failure_mode() -> None:
    result = _run(
        "impact",
        "inventory",
        "payprovider",
        "--failure-mode",
        "availability-zone",
        "--cmdb",
        str(f.SAMPLE),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["targets"] == ["component:default/inventory", "resource:default/payprovider"]
    rows = {s["ref"]: (s["distance"], s["rto"]) for s in body["services"]}
    assert rows == {
        "resource:default/payprovider": (0, "1h"),
        "component:default/payments": (1, "10m"),
        "component:default/checkout": (1, "5m"),
        "component:default/web": (1, "5m"),
        "component:default/inventory": (0, "1h"),
    }


def test_the_catalog_falls_back_to_the_environment_variable() -> None:
    result = _run("show", "--format", "json", env={"STORMDRILL_CMDB": str(f.SAMPLE_CATALOG)})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["services"]) == 6


def test_no_catalog_at_all_exits_1_saying_how_to_give_one() -> None:
    result = _run("show")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "pass --cmdb PATH or set STORMDRILL_CMDB" in result.stderr


def test_an_invalid_catalog_exits_1_under_strict_with_located_problems_and_no_traceback(
    tmp_path: Path,
) -> None:
    path = f.write(
        tmp_path, "c.yaml", f.group(), f.component("web", annotations={"stormdrill.dev/tier": "7"})
    )
    result = _run("show", "--cmdb", str(path), "--strict")
    assert result.exit_code == 1
    line = f.line_of(path, "stormdrill.dev/tier")
    column = path.read_text(encoding="utf-8").splitlines()[line - 1].index("'7'") + 1
    assert result.stderr.startswith(
        f'{path}:{line}:{column}: metadata.annotations["stormdrill.dev/tier"]: tier must be'
    )
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_an_unknown_ref_exits_1_with_a_suggestion() -> None:
    result = _run("impact", "paymnts", "--cmdb", str(f.SAMPLE))
    assert result.exit_code == 1
    assert "no entity 'component:default/paymnts'" in result.stderr
    assert "component:default/payments" in result.stderr


def test_catalog_warnings_go_to_stderr_and_do_not_fail(tmp_path: Path) -> None:
    path = f.write(tmp_path, "c.yaml", f.component("web", owner="team-nobody"))
    result = _run("show", "--cmdb", str(path), "--format", "json")
    assert result.exit_code == 0
    assert result.stderr.startswith(f"{path}:")
    assert "dangling reference" in result.stderr
    assert "warning" in result.stderr
    assert json.loads(result.stdout)["services"][0]["ref"] == "component:default/web"

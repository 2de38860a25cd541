"""`stormdrill cmdb` over partial and hostile catalogs: go on with the rest, or refuse."""

from __future__ import annotations

import json
from pathlib import Path

from typer import testing

from drills import cli
from orchestrator.cmdb import backstage, errors
from scenarios import reading
from tests.cmdb import factories as f

WIDE = {"COLUMNS": "200", "STORMDRILL_CMDB": ""}
DEPTH = 5000


def _run(*args: str) -> testing.Result:
    return testing.CliRunner().invoke(cli.app, ["cmdb", *args], env=WIDE)


def _partial(tmp_path: Path) -> Path:
    return f.write(
        tmp_path,
        "c.yaml",
        f.group(),
        f.component("web", depends_on=["checkout"]),
        f.component("checkout"),
        f.component("broken", annotations={"stormdrill.dev/tier": "9"}),
    )


def _deep(tmp_path: Path) -> Path:
    text = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: deep\n"
        "spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
        "  x: " + "[" * DEPTH + "]" * DEPTH + "\n"
    )
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _control(tmp_path: Path) -> Path:
    text = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\n"
        "  description: fine\n  title: Web\x11site\nspec:\n  type: website\n"
    )
    path = tmp_path / "ctl.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_show_goes_on_with_the_rest_and_says_how_many_were_refused(tmp_path: Path) -> None:
    path = _partial(tmp_path)
    result = _run("show", "--cmdb", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    refs = [s["ref"] for s in json.loads(result.stdout)["services"]]
    assert sorted(refs) == ["component:default/checkout", "component:default/web"]
    line = f.line_of(path, "stormdrill.dev/tier")
    assert f"{path}:{line}:" in result.stderr
    assert "CMDB: 1 catalog entry refused (component:default/broken)" in result.stderr


def test_show_and_impact_under_strict_exit_1_naming_the_line(tmp_path: Path) -> None:
    path = _partial(tmp_path)
    line = f.line_of(path, "stormdrill.dev/tier")
    for args in (("show",), ("impact", "checkout")):
        result = _run(*args, "--cmdb", str(path), "--strict")
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert f"{path}:{line}:" in result.stderr


def test_impact_goes_on_with_the_rest(tmp_path: Path) -> None:
    result = _run("impact", "checkout", "--cmdb", str(_partial(tmp_path)), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = [s["ref"] for s in json.loads(result.stdout)["services"]]
    assert rows == ["component:default/checkout", "component:default/web"]


def test_validate_exits_1_listing_every_error_and_0_on_a_clean_catalog(tmp_path: Path) -> None:
    path = _partial(tmp_path)
    result = _run("validate", str(path))
    assert result.exit_code == 1, result.output
    assert f"{path}:{f.line_of(path, 'stormdrill.dev/tier')}:" in result.stderr
    assert "1 refused, 1 error(s)" in result.stdout
    clean = _run("validate", "--cmdb", str(f.SAMPLE))
    assert clean.exit_code == 0, clean.output
    assert "0 refused, 0 error(s)" in clean.stdout


def test_validate_json_lists_problems_and_refused_entities(tmp_path: Path) -> None:
    result = _run("validate", str(_partial(tmp_path)), "--format", "json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False
    assert body["refused"] == ["component:default/broken"]
    assert [p["severity"] for p in body["problems"]] == ["error"]


def test_validate_without_a_catalog_exits_1() -> None:
    result = _run("validate")
    assert result.exit_code == 1
    assert "no catalog" in result.stderr


def test_deep_nesting_is_a_located_error_in_show_and_validate(tmp_path: Path) -> None:
    path = _deep(tmp_path)
    for args in (("show", "--cmdb", str(path)), ("validate", str(path))):
        result = _run(*args)
        assert result.exit_code == 1, result.output
        assert not isinstance(result.exception, RecursionError)
        assert f"{path}:9:" in result.stderr
        assert f"deeper than {reading.MAX_DEPTH} levels" in result.stderr


def test_deep_nesting_in_one_document_refuses_only_that_file_part(tmp_path: Path) -> None:
    good = f.write(tmp_path, "good.yaml", f.group(), f.component("web"))
    result = _run("show", "--cmdb", str(good), "--cmdb", str(_deep(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "│ web " in result.stdout  # the table shows `web` (component:default/web)
    assert "1 catalog entry refused" in result.stderr


def test_a_control_character_is_reported_at_its_real_line_and_column(tmp_path: Path) -> None:
    path = _control(tmp_path)
    try:
        backstage.load_catalog([path])
    except errors.CatalogInvalid as exc:
        [problem] = exc.problems
    else:
        raise AssertionError("a control character must not load")
    assert (problem.file, problem.line, problem.column) == (str(path), 6, 13)
    assert "\\x11" in problem.message
    result = _run("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:6:13:" in result.stderr


def _store_env(tmp_path: Path) -> dict[str, str]:
    return {**WIDE, "STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}


def test_coverage_goes_on_with_the_rest_and_strict_refuses(tmp_path: Path) -> None:
    path = _partial(tmp_path)
    runner = testing.CliRunner()
    lenient = runner.invoke(cli.app, ["coverage", "--cmdb", str(path)], env=_store_env(tmp_path))
    assert lenient.exit_code == 0, lenient.output
    assert "CMDB: 1 catalog entry refused (component:default/broken)" in lenient.stderr
    strict = runner.invoke(
        cli.app, ["coverage", "--cmdb", str(path), "--strict"], env=_store_env(tmp_path)
    )
    assert strict.exit_code == 3, strict.output
    assert f"{path}:{f.line_of(path, 'stormdrill.dev/tier')}:" in strict.stderr


def test_plan_under_strict_refuses_a_partial_catalog_before_touching_anything(
    tmp_path: Path,
) -> None:
    path = _partial(tmp_path)
    environment = Path(cli.__file__).parent / "examples" / "sandbox.environment.yaml"
    result = testing.CliRunner().invoke(
        cli.app,
        [
            *("plan", "az-failure-kubernetes", "--env", str(environment)),
            "--cmdb",
            str(path),
            "--strict",
        ],
        env=_store_env(tmp_path),
    )
    assert result.exit_code == 3, result.output
    assert f"{path}:{f.line_of(path, 'stormdrill.dev/tier')}:" in result.stderr
    assert result.stdout == ""

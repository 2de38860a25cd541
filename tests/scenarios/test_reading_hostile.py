"""Hostile YAML (control characters, deep nesting) is a Problem at its real line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer import testing

from drills import cli
from scenarios import errors, loading, reading
from tests.scenarios import factories

DEPTH = 5000


def test_a_control_character_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    text = factories.SCENARIO.replace("  name: zone-drain\n", "  name: zone\x11drain\n")
    path = factories.write(tmp_path, "ctl.yaml", text)
    result = loading.load_documents([path])
    [problem] = result.problems
    line = factories.line_of(text, "name: zone\x11drain")
    assert (problem.file, problem.line, problem.column) == (str(path), line, 13)
    assert "\\x11" in problem.message
    assert result.documents == ()


def test_a_control_character_after_a_bom_and_crlf_lines_keeps_its_place() -> None:
    raw = "\ufeffa: 1\r\nb: 2\r\nc: x\x07y\r\n".encode()
    [problem] = reading.read_bytes(raw, file="crlf.yaml").problems
    assert (problem.line, problem.column) == (3, 5)


def test_load_scenario_with_a_control_character_raises_scenario_invalid(tmp_path: Path) -> None:
    text = factories.SCENARIO.replace("  name: zone-drain\n", "  name: zone\x11drain\n")
    path = factories.write(tmp_path, "ctl.yaml", text)
    with pytest.raises(errors.ScenarioInvalid) as caught:
        loading.load_scenario(path)
    assert f"ctl.yaml:{factories.line_of(text, 'zone')}:" in str(caught.value)


def _nested(depth: int, *, prefix: str = "spec:\n  x: ") -> str:
    return "apiVersion: stormdrill.dev/v1\nkind: Scenario\n" + prefix + "[" * depth + "]" * depth


def test_deep_flow_nesting_is_refused_at_the_line_it_gets_too_deep(tmp_path: Path) -> None:
    path = factories.write(tmp_path, "deep.yaml", _nested(DEPTH) + "\n")
    result = loading.load_documents([path])
    [problem] = result.problems
    assert problem.file == str(path)
    assert problem.line == 4
    assert problem.column > reading.MAX_DEPTH
    assert f"deeper than {reading.MAX_DEPTH} levels" in problem.message


def test_deep_block_nesting_over_many_lines_names_the_line(tmp_path: Path) -> None:
    lines = ["apiVersion: stormdrill.dev/v1", "kind: Scenario"]
    lines += [" " * level + f"k{level}:" for level in range(200)]
    path = factories.write(tmp_path, "block.yaml", "\n".join(lines) + " 1\n")
    [problem] = loading.load_documents([path]).problems
    assert f"deeper than {reading.MAX_DEPTH} levels" in problem.message
    assert 2 < problem.line < 200


def test_nesting_at_the_limit_still_reads() -> None:
    text = "a: " + "[" * (reading.MAX_DEPTH - 1) + "]" * (reading.MAX_DEPTH - 1) + "\n"
    result = reading.read_bytes(text.encode(), file="ok.yaml")
    assert result.problems == ()
    assert len(result.trees) == 1


def test_validate_command_reports_deep_nesting_and_control_characters(tmp_path: Path) -> None:
    deep = factories.write(tmp_path, "deep.yaml", _nested(DEPTH) + "\n")
    ctl = factories.write(
        tmp_path, "ctl.yaml", factories.SCENARIO.replace("zone-drain", "zone\x11drain", 1)
    )
    result = testing.CliRunner().invoke(cli.app, ["validate", str(deep), str(ctl)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{deep}:4:" in result.stderr
    assert f"{ctl}:4:13:" in result.stderr
    assert "Traceback" not in result.output


def test_deep_block_sequences_refuse_only_their_document() -> None:
    text = "a: 1\n---\nb:\n  " + "- " * DEPTH + "x\n---\nc: 3\n"
    result = reading.read_bytes(text.encode(), file="multi.yaml")
    assert [tree.data for tree in result.trees] == [{"a": 1}, {"c": 3}]
    [problem] = result.problems
    assert problem.line == 4
    assert problem.field.startswith("b[0]")
    assert f"deeper than {reading.MAX_DEPTH} levels" in problem.message


def test_scalar_texts_are_kept_as_written() -> None:
    [tree] = reading.read_bytes(b"tier: 1\nname: '007'\n", file="t.yaml").trees
    assert tree.data == {"tier": 1, "name": "007"}
    assert tree.texts[("tier",)] == "1"
    assert tree.texts[("name",)] == "007"

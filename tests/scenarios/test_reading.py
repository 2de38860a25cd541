"""Reading YAML: every unsafe or malformed input becomes a Problem naming file and line."""

from __future__ import annotations

from pathlib import Path

from scenarios import loading, reading
from tests.scenarios import factories


def _only_problem(path: Path) -> str:
    result = loading.load_documents([path])
    assert not result.ok
    assert result.documents == ()
    assert len(result.problems) >= 1
    return str(result.problems[0])


def test_tab_indentation_is_reported_with_its_line(tmp_path: Path) -> None:
    text = factories.SCENARIO.replace(
        "    zone:\n      type: string", "    zone:\n\t  type: string"
    )
    path = factories.write(tmp_path, "tabs.yaml", text)
    message = _only_problem(path)
    line = factories.line_of(text, "\t  type: string")
    assert f"tabs.yaml:{line}:1" in message
    assert "tab character used for indentation" in message
    assert "spaces" in message


def test_duplicate_keys_name_both_lines_and_the_field(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "  hypothesis: Checkout stays healthy.\n",
        "  hypothesis: Checkout stays healthy.\n  hypothesis: Something else.\n",
    )
    path = factories.write(tmp_path, "dup.yaml", text)
    message = _only_problem(path)
    first = factories.line_of(text, "hypothesis:")
    second = factories.line_of(text, "hypothesis:", occurrence=2)
    assert f"dup.yaml:{second}:3: spec.hypothesis:" in message
    assert f"first on line {first}" in message
    assert f"again on line {second}" in message


def test_alias_bomb_is_refused_by_the_value_budget(tmp_path: Path) -> None:
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for index, name in enumerate("bcdefg"):
        previous = "abcdefg"[index]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    path = factories.write(tmp_path, "bomb.yaml", "\n".join(levels) + "\n")
    message = _only_problem(path)
    assert "bomb.yaml:" in message
    assert f"more than {reading.MAX_VALUES} values" in message
    assert "alias" in message


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = factories.write(tmp_path, "loop.yaml", "spec: &a\n  again: *a\n")
    message = _only_problem(path)
    assert "loop.yaml:" in message
    assert "refers to itself" in message


def test_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# padding\n" * (reading.MAX_FILE_BYTES // 10 + 1))
    message = _only_problem(path)
    assert "huge.yaml:1:1" in message
    assert "byte limit" in message


def test_non_utf8_bytes_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"apiVersion: stormdrill.dev/v1\nkind: Scenario\nmetadata:\n  name: caf\xe9\n")
    message = _only_problem(path)
    assert "latin1.yaml:4:12" in message
    assert "not valid UTF-8" in message
    assert "0xe9" in message


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = factories.write(tmp_path, "empty.yaml", "# nothing here\n\n")
    message = _only_problem(path)
    assert "empty.yaml:1:1" in message
    assert "file is empty" in message


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO, "environments: [sandbox]", "environments: [sandbox"
    )
    path = factories.write(tmp_path, "syntax.yaml", text)
    message = _only_problem(path)
    assert "syntax.yaml:" in message
    assert "YAML syntax error" in message
    line = int(message.split(":")[1])
    assert line >= factories.line_of(text, "environments: [sandbox")


def test_arbitrary_python_tags_are_refused(tmp_path: Path) -> None:
    path = factories.write(
        tmp_path, "evil.yaml", "apiVersion: !!python/object/apply:os.system ['true']\n"
    )
    message = _only_problem(path)
    assert "evil.yaml:1:13: apiVersion:" in message
    assert "unsupported YAML tag" in message


def test_core_schema_keeps_times_and_norway_as_strings() -> None:
    result = reading.read_bytes(
        b"start: 17:00\ncountry: NO\nanswer: yes\nhex: 0x10\nratio: 1.5\nnothing: ~\n",
        file="x.yaml",
    )
    assert result.problems == ()
    assert result.trees[0].data == {
        "start": "17:00",
        "country": "NO",
        "answer": "yes",
        "hex": 16,
        "ratio": 1.5,
        "nothing": None,
    }


def test_merge_keys_merge_with_explicit_keys_winning() -> None:
    result = reading.read_bytes(b"base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", file="m.yaml")
    assert result.trees[0].data == {"base": {"x": 1, "y": 2}, "m": {"x": 1, "y": 3}}


def test_marks_record_lines_of_keys_and_values() -> None:
    result = reading.read_bytes(b"a:\n  b:\n    - 1\n    - two\n", file="m.yaml")
    tree = result.trees[0]
    assert tree.mark_for(("a", "b", 1)) == reading.Mark(line=4, column=7)
    assert tree.key_mark(("a", "b")) == reading.Mark(line=2, column=3)
    assert reading.render_path(("spec", "steps", 2, "action")) == "spec.steps[2].action"
    assert reading.render_path(("labels", "a.b/c")) == 'labels["a.b/c"]'

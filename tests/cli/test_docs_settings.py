"""docs/settings.md lists every `STORMDRILL_*` variable; README and the CI example install alike."""

from __future__ import annotations

import pathlib
import re

from drills import settings_doc

ROOT = pathlib.Path(__file__).resolve().parents[2]
_NAME = re.compile(r"(?<![A-Z_])STORMDRILL_[A-Z0-9_]*[A-Z0-9]")
SOURCE_FOLDERS = ("drills", "orchestrator", "scenarios", "reports", "sandbox", "tests")


def test_every_variable_the_settings_read_is_described() -> None:
    assert settings_doc.variables()  # the scan finds the settings' variables at all
    assert "STORMDRILL_DATABASE_URL" in settings_doc.variables()
    assert settings_doc.undocumented() == ()


def test_docs_settings_table_is_the_generated_one() -> None:
    document = (ROOT / "docs" / "settings.md").read_text()
    assert settings_doc.generated_block(document) == settings_doc.render_table(), (
        "docs/settings.md is stale: run `python -m drills.settings_doc --write`"
    )


def test_an_undescribed_variable_renders_as_undocumented() -> None:
    table = settings_doc.render_table(["STORMDRILL_NOT_A_SETTING"])
    assert "| `STORMDRILL_NOT_A_SETTING` | **undocumented** | ? |" in table


def test_with_table_replaces_only_the_generated_block() -> None:
    document = f"intro\n{settings_doc.BEGIN}\nold table\n{settings_doc.END}\noutro\n"
    updated = settings_doc.with_table(document)
    assert updated.startswith(f"intro\n{settings_doc.BEGIN}\n| variable |")
    assert updated.endswith(f"{settings_doc.END}\noutro\n")
    assert "old table" not in updated


def test_every_stormdrill_variable_in_the_code_is_in_docs_settings() -> None:
    documented = set(_NAME.findall((ROOT / "docs" / "settings.md").read_text()))
    used: set[str] = set()
    for folder in SOURCE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            if path == pathlib.Path(__file__).resolve():
                continue  # this file names a made-up variable on purpose
            used.update(_NAME.findall(path.read_text()))
    missing = sorted(used - documented)
    assert not missing, f"add these to docs/settings.md: {', '.join(missing)}"


def test_readme_says_how_to_put_the_binary_on_path_and_links_the_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'export PATH="$PWD/.venv/bin:$PATH"' in readme
    assert ". .venv/bin/activate" in readme
    assert "docs/settings.md" in readme


def test_make_install_prints_how_to_put_the_binary_on_path() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ninstall: $(STAMP)\n", 1)[1].split("\n\n", 1)[0]
    assert 'export PATH="$$PWD/$(BIN):$$PATH"' in recipe
    assert ". $(BIN)/activate" in recipe


def test_readme_names_every_drill_the_demo_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    demo = (ROOT / "drills" / "commands" / "demo.py").read_text()
    drilled = set(re.findall(r'_drill\(\s*config,\s*store,\s*"([a-z0-9-]+)"', demo))
    assert drilled == {
        "az-failure-kubernetes",
        "az-power-loss-kubernetes",
        "az-failure-aws",
        "key-person-loss",
    }
    for scenario in drilled:
        assert f"`{scenario}`" in readme


def test_ci_example_installs_the_way_the_readme_does() -> None:
    workflow = (ROOT / "docs" / "ci" / "github-actions-drill.yml").read_text()
    assert "make install" in workflow
    assert "pip install stormdrill" not in workflow
    assert '"$PWD/.venv/bin" >> "$GITHUB_PATH"' in workflow

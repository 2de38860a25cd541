"""Post-mortems: golden Markdown for a fixed run, HTML and JSON, redaction, impact."""

from __future__ import annotations

import html.parser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from reports import evidence, linting, postmortem, rendering
from tests.reports import factories, update_golden

UPDATE_ENV = "STORMDRILL_UPDATE_GOLDEN"
UPDATE_COMMAND = "python -m tests.reports.update_golden"


def _report(tmp_path: Path, **kwargs: object) -> tuple[postmortem.PostMortem, object]:
    store = factories.open_store(tmp_path)
    run = factories.record_run(store, **kwargs)  # type: ignore[arg-type]
    catalog = factories.write_catalog(tmp_path / "cmdb")
    scenario = factories.scenario(tmp_path / "scenario")
    report = postmortem.build_postmortem(evidence.load(store, run.id), scenario, cmdb=catalog)
    store.close()
    return report, catalog


def test_markdown_of_a_fixed_run_matches_the_golden_file(tmp_path: Path) -> None:
    assert not (os.environ.get(UPDATE_ENV) and os.environ.get("CI")), (
        f"{UPDATE_ENV} is set under CI: a pipeline must never bless its own output. Unset "
        f"it; update the golden file by hand with `{UPDATE_COMMAND}` and commit the diff."
    )
    golden = update_golden.GOLDEN.read_bytes()

    markdown = update_golden.fixed_run_markdown(tmp_path)

    assert update_golden.GOLDEN.read_bytes() == golden  # the test never writes it
    assert markdown == golden.decode("utf-8"), (
        f"the post-mortem differs from {update_golden.GOLDEN}; if the change is intended, "
        f"run `{UPDATE_COMMAND}` and review the diff"
    )


def test_golden_file_is_refused_when_the_update_variable_is_set_under_ci() -> None:
    environ = {**os.environ, UPDATE_ENV: "1", "CI": "true"}
    before = update_golden.GOLDEN.read_bytes()

    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"{Path(__file__)}::test_markdown_of_a_fixed_run_matches_the_golden_file",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert f"{UPDATE_ENV} is set under CI" in ran.stdout
    assert "1 failed" in ran.stdout
    assert update_golden.GOLDEN.read_bytes() == before


def test_generated_report_lints_clean_with_the_cmdb_people(tmp_path: Path) -> None:
    report, catalog = _report(tmp_path, revert_fails=True, rto_s=90.0)
    markdown = rendering.to_markdown(report)
    assert linting.lint(markdown, people=linting.people_names(catalog)) == []  # type: ignore[arg-type]


def test_held_run_report_lints_clean_and_has_every_section(tmp_path: Path) -> None:
    report, _ = _report(tmp_path, deviate=False)
    markdown = rendering.to_markdown(report)
    assert linting.lint(markdown) == []
    assert report.result.startswith("HELD")
    assert report.action_items[0].title.startswith("Schedule")


def test_secrets_never_reach_any_rendering(tmp_path: Path) -> None:
    report, _ = _report(
        tmp_path, probe_message="GET https://bot:s3cr3tpass@api/x Bearer abcdefgh12345678"
    )
    for fmt in rendering.Format:
        text = rendering.render(report, fmt)
        for secret in ("hunter2", "abc123secret", "s3cr3tpass", "abcdefgh12345678"):
            assert secret not in text, (fmt, secret)


def test_json_carries_achieved_and_target_rto_in_seconds(tmp_path: Path) -> None:
    report, _ = _report(tmp_path)
    body = json.loads(rendering.to_json(report))
    assert body["achieved_rto"] == 1.5
    assert body["target_rto"] == 60.0
    assert body["recovery"]["target_rto_s"] == 600.0
    assert body["metadata"]["status"] == "Draft"


def test_rollback_failure_is_a_p1_action_item_and_shows_in_the_appendix(tmp_path: Path) -> None:
    report, _ = _report(tmp_path, revert_fails=True)
    assert report.recovery.all_reverted is False
    assert any(m.undo == "UNDO FAILED" for m in report.appendix)
    leftover = [a for a in report.action_items if a.title.startswith("Remove the leftover")]
    assert leftover and leftover[0].priority is postmortem.Priority.P1


def test_timeline_rows_are_in_time_order_and_each_has_evidence(tmp_path: Path) -> None:
    report, _ = _report(tmp_path)
    times = [row.at for row in report.timeline]
    assert times == sorted(times)
    assert all(re.search(r"#\d+", row.evidence) for row in report.timeline)


def test_impact_paths_not_recorded_come_from_a_walk_through_a_dependency_cycle(
    tmp_path: Path,
) -> None:
    store = factories.open_store(tmp_path)
    run = factories.record_run(
        store,
        impact=[  # as recorded before paths were: the set and distances, no path
            {"ref": f"component:default/{name}", "tier": 1, "distance": distance}
            for name, distance in (("alpha", 0), ("beta", 1), ("gamma", 2))
        ],
    )
    catalog = factories.write_catalog(tmp_path / "cmdb", factories.CYCLE_CATALOG)
    report = postmortem.build_postmortem(evidence.load(store, run.id), None, cmdb=catalog)
    names = [row.name for row in report.impact]
    assert sorted(names) == ["alpha", "beta", "gamma"]
    gamma = next(row for row in report.impact if row.name == "gamma")
    assert gamma.path == ["alpha", "beta", "gamma"] and not gamma.targeted


def test_report_without_cmdb_or_scenario_falls_back_to_the_record(tmp_path: Path) -> None:
    store = factories.open_store(tmp_path)
    run = factories.record_run(store)
    report = postmortem.build_postmortem(evidence.load(store, run.id), None, cmdb=None)
    assert [row.ref for row in report.impact] == ["component:default/web"]
    assert report.impact[0].owner == "team-web"
    assert linting.lint(rendering.to_markdown(report)) == []


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.open: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_h2 = tag == "h2"
        for name, value in attrs:
            if name in ("href", "src", "action") and value:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.headings.append(data.strip())


def test_html_parses_has_every_section_and_no_external_urls(tmp_path: Path) -> None:
    report, _ = _report(tmp_path, revert_fails=True)
    page = rendering.to_html(report)
    parser = _Collector()
    parser.feed(page)
    parser.close()
    assert parser.headings == list(rendering.SECTIONS)
    assert all(url.startswith(("#", "data:")) for url in parser.urls)  # nothing external
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert "<style>" in page and "@media print" in page
    assert 'href="#journal-1"' in page and 'id="journal-1"' in page

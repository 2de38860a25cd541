"""Every page, in the browser: it loads, stays on 127.0.0.1, logs no error, and passes axe.

Each address of the web issue's contract is opened by a logged-in admin (the role that
sees every button): first with the Content-Security-Policy on (scripts from this server
only, no framing), where the page must answer 200 without a redirect, draw its title as
the one `h1`, log no console error (a CSP refusal is one) or page error, and request
nothing from a host other than 127.0.0.1; then in a context that bypasses the CSP only so
that axe-core can be injected as a script tag, where axe-core must find no violation of
impact `serious` or `critical` (the failure lists each with its help text and the
elements). `/runs/{id}` is a sandbox drill that completed; `/scenarios/{name}` the bundled
`az-failure-kubernetes`; `/gamedays/{id}` a game day made through the API around now.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.browser import conftest

pytestmark = pytest.mark.browser

PAGES = (
    "/",
    "/coverage",
    "/runs",
    "/runs/{run}",
    "/scenarios",
    "/scenarios/{scenario}",
    "/schedules",
    "/gamedays",
    "/gamedays/{gameday}",
    "/approvals",
    "/audit",
    "/login",
)
BLOCKING_IMPACTS = ("serious", "critical")
AXE_RUN_JS = """async (impacts) => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter(v => impacts.includes(v.impact))
    .map(v => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map(n => n.target.join(" ") + " :: " + (n.failureSummary || "")),
    }));
}"""


def _address(template: str, run_id: str, gameday: str) -> str:
    return template.format(run=run_id, scenario=conftest.SANDBOX_SCENARIO, gameday=gameday)


def _describe(violations: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for violation in violations:
        lines.append(f"{violation['impact']} {violation['id']}: {violation['help']}")
        lines.extend(f"    {node}" for node in violation["nodes"][:10])
    return "\n".join(lines)


@pytest.mark.parametrize("template", PAGES)
def test_the_page_loads_with_its_title_no_console_error_and_no_request_off_loopback(
    template: str, browse: conftest.Browse, completed_run: str, gameday: str
) -> None:
    tab = browse(conftest.ADMIN)

    answer = tab.visit(_address(template, completed_run, gameday))

    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in answer.headers["content-security-policy"].split(";")
        if directive.strip()
    }
    assert policy["script-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    headings = tab.page.locator("h1")
    assert headings.count() == 1
    title = headings.inner_text().strip()
    assert title and title in tab.page.title()
    assert tab.page.get_by_role("navigation", name="Main").is_visible()
    tab.assert_clean()


@pytest.mark.parametrize("template", PAGES)
def test_axe_core_finds_no_serious_or_critical_violation_on_the_page(
    template: str,
    browse: conftest.Browse,
    completed_run: str,
    gameday: str,
    axe_script: str,
) -> None:
    tab = browse(conftest.ADMIN, bypass_csp=True)
    tab.visit(_address(template, completed_run, gameday))

    tab.page.add_script_tag(content=axe_script)
    violations: list[dict[str, Any]] = tab.page.evaluate(AXE_RUN_JS, list(BLOCKING_IMPACTS))

    assert not violations, f"axe-core on {template}:\n{_describe(violations)}"
    tab.assert_clean()

"""In the browser: a drill started in a protected Environment waits for a second person.

The operator starts `az-failure-kubernetes` in `staging` (the sandbox's Environment,
protected, one approval needed) from the scenario page's Start drill form; the run awaits
approval. On `/approvals` the operator (the requester, and no approver) sees the run but
no Approve button; the approver, logged in in another browser context, approves it with a
comment through the run's approve form (`POST /runs/{id}/approve`). The API then shows the
approval by the approver, and the runner drives the run to its end.
"""

from __future__ import annotations

import pytest
from playwright import sync_api

from orchestrator import states
from tests.web.browser import conftest

pytestmark = pytest.mark.browser


def test_a_protected_environment_run_waits_until_a_second_user_approves_it_on_the_inbox(
    browse: conftest.Browse, served: conftest.Served
) -> None:
    requester = browse(conftest.OPERATOR)
    run_id, _ = conftest.start_from_scenario_page(
        requester,
        scenario=conftest.SANDBOX_SCENARIO,
        environment=conftest.PROTECTED_ENVIRONMENT,
        soak="1m",
    )
    requester.shot(f"run {run_id} awaiting approval")
    assert served.run(run_id)["state"] == states.RunState.PENDING.value
    with served.api(conftest.ADMIN) as client:
        awaiting = client.get(f"/api/v1/runs/{run_id}/approvals").json()
    assert awaiting["approval"]["awaitingApproval"] is True, awaiting
    assert awaiting["approval"]["requester"] == conftest.OPERATOR

    requester.visit("/approvals")
    own = requester.page.locator(f'[data-run="{run_id}"]')
    sync_api.expect(own).to_be_visible()
    assert own.locator(f'form[action="/runs/{run_id}/approve"]').count() == 0
    assert own.get_by_role("button", name="Approve").count() == 0
    assert own.locator(".approve-refusal").is_visible()  # says why there is no button

    approver = browse(conftest.APPROVER)
    approver.visit("/approvals")
    item = approver.page.locator(f'[data-run="{run_id}"]')
    sync_api.expect(item).to_be_visible()
    assert conftest.OPERATOR in item.inner_text()
    form = item.locator(f'form[action="/runs/{run_id}/approve"]')
    form.get_by_label("Comment").fill("plan reviewed in the browser test")
    with approver.page.expect_navigation():
        form.get_by_role("button", name="Approve").click()
    approver.shot(f"after approving {run_id}")

    with served.api(conftest.ADMIN) as client:
        decided = client.get(f"/api/v1/runs/{run_id}/approvals").json()
    assert decided["approval"]["approvedBy"] == [conftest.APPROVER], decided
    assert decided["approval"]["missing"] == 0, decided
    assert [a["comment"] for a in decided["approval"]["approvals"]] == [
        "plan reviewed in the browser test"
    ]
    assert approver.page.locator(f'[data-run="{run_id}"]').count() == 0  # out of the inbox
    ended = served.wait_until_ended(run_id)
    assert ended["state"] == states.RunState.COMPLETED.value, ended
    requester.assert_clean()
    approver.assert_clean()

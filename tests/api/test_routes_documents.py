"""Scenarios, environments and drills over HTTP: lists, one of each, validation, and secrets."""

from __future__ import annotations

import json

from fastapi import testclient

from tests.api import conftest

API = "/api/v1"


def _no_secret_in(text: str) -> None:
    for secret in conftest.SECRETS:
        assert secret not in text, f"{secret!r} leaked: {text}"


def test_scenarios_lists_the_configured_folder_and_the_bundled_library_by_name(
    api_client: testclient.TestClient,
) -> None:
    response = api_client.get(f"{API}/scenarios")

    assert response.status_code == 200
    names = [s["name"] for s in response.json()["scenarios"]]
    assert names == sorted(names)
    assert {"absence-cover", "with-secret", "az-failure-kubernetes", "key-person-loss"} <= set(
        names
    )


def test_one_scenario_shows_its_parameters_and_document_with_the_secret_default_masked(
    api_client: testclient.TestClient,
) -> None:
    response = api_client.get(f"{API}/scenarios/with-secret")

    assert response.status_code == 200
    body = response.json()
    assert body["failureMode"] == "key-person" and body["bundled"] is False
    params = {p["name"]: p for p in body["parameters"]}
    assert params["webhookToken"] == {
        "name": "webhookToken",
        "type": "string",
        "default": "***",
        "description": "",
        "secret": True,
    }
    assert params["person"]["default"] == "user:default/alice"
    assert "tok-default-0123456789" not in response.text
    assert body["document"]["kind"] == "Scenario"


def test_an_unknown_scenario_is_404_with_close_names(api_client: testclient.TestClient) -> None:
    response = api_client.get(f"{API}/scenarios/absence-covr")

    problem = conftest.problem_of(response)
    assert response.status_code == 404
    assert "absence-cover" in problem["detail"]


def test_environments_list_says_which_are_protected(api_client: testclient.TestClient) -> None:
    response = api_client.get(f"{API}/environments")

    assert response.status_code == 200
    shown = {e["name"]: e for e in response.json()["environments"]}
    assert shown["locked"]["protected"] is True and shown["locked"]["approvalsRequired"] == 1
    assert shown["test"]["protected"] is False and shown["test"]["labels"] == {"tier": "test"}
    _no_secret_in(response.text)


def test_an_environment_carrying_tokens_and_passwords_never_returns_them(
    api_client: testclient.TestClient,
) -> None:
    response = api_client.get(f"{API}/environments/test")

    assert response.status_code == 200
    _no_secret_in(response.text)
    body = response.json()
    assert body["parameters"] == {
        "apiToken": "***",
        "dbPassword": "***",
        "accessKey": "***",
        "zone": "us-east-1b",
    }
    assert body["prometheus"] == "https://***@prometheus.test.example"
    assert body["timeScale"] == 0.01


def test_an_unknown_environment_is_404(api_client: testclient.TestClient) -> None:
    response = api_client.get(f"{API}/environments/prod")

    assert response.status_code == 404
    assert "no Environment named 'prod'" in conftest.problem_of(response)["detail"]


def test_drills_lists_the_drill_documents_with_their_schedule(
    api_client: testclient.TestClient,
) -> None:
    listed = api_client.get(f"{API}/drills")
    one = api_client.get(f"{API}/drills/weekly-absence")
    missing = api_client.get(f"{API}/drills/monthly")

    assert listed.status_code == 200
    assert [d["name"] for d in listed.json()["drills"]] == ["weekly-absence"]
    assert one.status_code == 200
    assert one.json()["scenario"] == "absence-cover"
    assert one.json()["schedule"] == "0 10 * * 1 (Europe/Berlin)"
    assert missing.status_code == 404


def test_validating_a_good_document_reports_it_valid(api_client: testclient.TestClient) -> None:
    response = api_client.post(
        f"{API}/scenarios:validate",
        params={"filename": "absence.yaml"},
        content=conftest.ABSENCE_SCENARIO.encode(),
        headers={"content-type": "application/yaml"},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True
    assert body["documents"] == [
        {"kind": "Scenario", "name": "absence-cover", "file": "absence.yaml"}
    ]


def test_validating_a_broken_document_places_each_problem_at_its_line_and_field(
    api_client: testclient.TestClient,
) -> None:
    broken = conftest.ABSENCE_SCENARIO.replace(
        "action: people.mark-unavailable", "action: people.mark-unavialable"
    )

    response = api_client.post(
        f"{API}/scenarios:validate", params={"filename": "drill.yaml"}, content=broken.encode()
    )

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    [problem] = [p for p in body["problems"] if p["severity"] == "error"]
    line = broken.splitlines().index("      action: people.mark-unavialable") + 1
    assert (problem["file"], problem["line"]) == ("drill.yaml", line)
    assert problem["field"] == "spec.steps[0].action"
    assert "people.mark-unavailable" in problem["message"] + problem["hint"]
    assert "/tmp" not in json.dumps(body)


def test_validating_text_that_is_not_yaml_says_where(api_client: testclient.TestClient) -> None:
    response = api_client.post(f"{API}/scenarios:validate", content=b"kind: [unclosed\n")

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert body["problems"][0]["file"] == "document.yaml"
    assert body["problems"][0]["line"] >= 1


def test_a_viewer_reads_documents(viewer_client: testclient.TestClient) -> None:
    assert viewer_client.get(f"{API}/environments/test").status_code == 200
    assert viewer_client.get(f"{API}/scenarios").status_code == 200

"""OpenAPI examples: every successful response of the real app shows a recorded example.

The examples are `drills/api/examples.json`, recorded from a real run of the app by
`tests.api.record_examples`; these tests keep the file and the app in step: a new route
without a recording fails (a), an example that no longer fits its route's response model
fails (b), and the recorder still produces what the file holds (c).
"""

from __future__ import annotations

import json

import pydantic
from fastapi import routing, testclient

from drills.api import examples
from drills.service import tokens
from tests.api import conftest, record_examples

RERECORD = "re-record with `.venv/bin/python -m tests.api.record_examples`"


def test_every_successful_response_of_every_operation_shows_a_recorded_example(
    app_for: conftest.AppFor,
) -> None:
    app = app_for(drive_runs=False, recover_on_start=False)
    spec = app.openapi()
    recorded = examples.load()
    documented = dict(examples.successes(spec))

    missing = sorted(key for key in documented if key not in recorded)
    stale = sorted(key for key in recorded if key not in documented)

    assert not missing, f"no recorded example for {[str(k) for k in missing]}: {RERECORD}"
    assert not stale, f"recorded for no route: {[str(k) for k in stale]}: {RERECORD}"
    for key, media in documented.items():
        content = spec["paths"][key.path][key.method]["responses"][key.status]["content"]
        assert content[media]["example"] == recorded[key], key
    assert len(documented) >= 38
    assert app.openapi() is spec  # generated and decorated once, then cached


def test_every_recorded_json_example_validates_against_its_routes_response_model(
    app_for: conftest.AppFor,
) -> None:
    app = app_for(drive_runs=False, recover_on_start=False)
    recorded = examples.load()
    checked: list[str] = []

    for found in routing.iter_route_contexts(app.routes):  # routers included, prefixes applied
        route = found.route
        if not isinstance(route, routing.APIRoute) or route.response_model is None:
            continue
        adapter = pydantic.TypeAdapter(route.response_model)
        assert found.path_format is not None and found.methods, found
        for method in sorted(found.methods):
            key = examples.ResponseKey(
                found.path_format,
                method.lower(),
                str(route.status_code or 200),
                "application/json",
            )
            assert key in recorded, f"{key}: {RERECORD}"
            adapter.validate_python(recorded[key])
            checked.append(str(key))

    assert len(checked) >= 30, checked
    assert "post /api/v1/runs/{run_id}/approve 200 application/json" in {c.lower() for c in checked}


def test_text_examples_are_the_documents_the_routes_serve() -> None:
    recorded = examples.load()

    def text(path: str, media: str) -> str:
        body = recorded[examples.ResponseKey(path, "get", "200", media)]
        assert isinstance(body, str), (path, media)
        return body

    run = "/api/v1/runs/{run_id}"
    assert text(f"{run}/report", "text/markdown").startswith("#")
    assert "<html" in text(f"{run}/report", "text/html").lower()
    assert "<testsuites" in text(f"{run}/junit", "application/xml")
    assert text(f"{run}/events", "text/event-stream").startswith("id: ")
    assert "event: state" in text(f"{run}/events", "text/event-stream")
    assert "stormdrill_runs" in text("/metrics", "text/plain")
    assert text("/api/v1/coverage", "text/csv").splitlines()[0].count(",") >= 2
    lines = text("/api/v1/audit", "application/jsonl").splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    report = recorded[examples.ResponseKey(f"{run}/report", "get", "200", "application/json")]
    assert isinstance(report, dict)
    metadata = report["metadata"]
    assert isinstance(metadata, dict) and metadata["run_id"], metadata


def test_recorded_examples_hold_no_secret_and_no_path_of_the_recording_machine() -> None:
    text = examples.render(examples.load())
    issued = examples.load()[
        examples.ResponseKey("/api/v1/tokens", "post", "201", "application/json")
    ]

    assert isinstance(issued, dict)
    secret = issued["token"]
    assert isinstance(secret, str) and secret.startswith(tokens.PREFIX)
    assert record_examples.SECRET_PLACEHOLDER in secret
    assert len(secret) == len(tokens.PREFIX) + 43  # as long as a real one (32 bytes, base64)
    assert secret[: tokens.PREFIX_LENGTH] == issued["prefix"]
    assert str(record_examples.PROJECT) not in text
    assert "stormdrill-examples-" not in text and "/tmp/" not in text
    for leaked in conftest.SECRETS:
        assert leaked not in text


def test_the_recorder_still_records_what_the_file_holds_for_the_documents(
    app_for: conftest.AppFor, api_world: conftest.ApiWorld
) -> None:
    app = app_for(drive_runs=False, recover_on_start=False)
    documented = frozenset(key for key, _ in examples.successes(app.openapi()))
    with testclient.TestClient(app) as client:
        rec = record_examples.Recorder(client=client, documented=documented)
        rec.call("GET", "/api/v1/environments")
        rec.call("GET", "/api/v1/drills/{name}", path={"name": "weekly-absence"})
    replacements = record_examples.replacements_for(api_world.root)
    recorded = examples.load()

    assert len(rec.recorded) == 2
    for key, body in rec.recorded.items():
        assert record_examples.neutralise(body, replacements) == recorded[key], f"{key}: {RERECORD}"


def test_examples_round_trip_through_the_file_format_with_sorted_keys() -> None:
    recorded = examples.load()
    text = examples.render(recorded)

    assert examples.parse(text) == recorded
    assert json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text

"""The error tree as RFC 9457 problems: each branch's status, type and the headers it needs."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from drills.api import problems
from drills.service import auth, documents, killswitches
from drills.service import runs as run_service
from orchestrator import errors as orchestrator_errors
from orchestrator import journal, records, states
from scenarios import errors


def _body(response: object) -> dict[str, object]:
    body: dict[str, object] = json.loads(response.body)  # type: ignore[attr-defined]
    return body


def _ended() -> states.Run:
    return states.new_run(
        id=states.RunId("r1"),
        scenario="s",
        environment="e",
        environment_source="e.yaml",
        owner=journal.UNCLAIMED,
        at=datetime(2025, 1, 1, tzinfo=UTC),
        record=records.RunRecord(),
    )


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (
            errors.ScenarioInvalid([errors.Problem("d.yaml", 3, 5, "spec.x", "bad")]),
            422,
            "invalid-document",
        ),
        (auth.Unauthenticated("no token"), 401, "unauthenticated"),
        (auth.Forbidden("viewer may not start"), 403, "forbidden"),
        (run_service.UnknownRun("no run 'x'"), 404, "not-found"),
        (documents.NotFound("no Environment named 'x'"), 404, "not-found"),
        (run_service.RunEnded(_ended()), 409, "run-ended"),
        (killswitches.Engaged("engaged"), 409, "killswitch-engaged"),
        (
            orchestrator_errors.StoreUnreachable(url="sqlite:///x", reason="gone"),
            503,
            "store-unreachable",
        ),
        (orchestrator_errors.ProviderRetryable("connection refused"), 502, "upstream-unreachable"),
        (errors.StormdrillError("a user mistake"), 422, "invalid-request"),
    ],
)
def test_each_branch_of_the_tree_has_its_status_and_type(
    error: Exception, status: int, slug: str
) -> None:
    response = problems.from_error(error, instance="/api/v1/x")

    body = _body(response)
    assert response.status_code == status == body["status"]
    assert response.media_type == problems.MEDIA_TYPE
    assert body["type"] == f"{problems.TYPE_BASE}{slug}"
    assert body["instance"] == "/api/v1/x"


def test_an_invalid_document_lists_the_lines_validate_prints() -> None:
    problem = errors.Problem("drill.yaml", 14, 7, "spec.steps[2].action", "unknown action")

    body = _body(problems.from_error(errors.ScenarioInvalid([problem])))

    assert body["errors"] == ["drill.yaml:14:7: spec.steps[2].action: unknown action"]
    assert body["problems"] == [
        {
            "file": "drill.yaml",
            "line": 14,
            "column": 7,
            "field": "spec.steps[2].action",
            "message": "unknown action",
            "hint": "",
            "severity": "error",
        }
    ]


def test_401_says_how_to_authenticate_and_503_when_to_retry() -> None:
    unauthenticated = problems.from_error(auth.Unauthenticated("no token"))
    unreachable = problems.from_error(
        orchestrator_errors.StoreUnreachable(url="sqlite:///x", reason="gone")
    )

    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert unreachable.headers["retry-after"] == "5"


def test_a_secret_in_a_message_is_masked() -> None:
    body = _body(
        problems.from_error(errors.StormdrillError("cannot reach https://bob:hunter22@db.example"))
    )

    assert "hunter22" not in json.dumps(body)


def test_a_bug_is_500_without_its_details_and_a_database_that_went_away_is_503() -> None:
    bug = problems.from_error(RuntimeError("secret internals"))
    gone = problems.from_error(
        sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))
    )

    assert bug.status_code == 500 and "secret internals" not in bytes(bug.body).decode()
    assert gone.status_code == 503
    assert _body(gone)["detail"] == "the run store failed: disk I/O error"

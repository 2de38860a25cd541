"""A drill over the sandbox with a recognisable secret planted in every place a user can put one.

Each canary is distinct (`S3cr3t-canary-<PLACE>`), so a leak names its place. The scenario
is written to a tmp folder: it reads an Environment token (`apiToken`, used as a bearer
header and in a manual step's text), a `--set` vendor key (`vendorApiKey`), a parameter
declared `secret: true` with an innocent name (`vendorHeader`), a probe URL carrying a
password (`http://drill:…@127.0.0.1…`, in the Environment's parameters), and a vendor probe
whose URL (with a password) is unreachable, so the secret reaches an error message, the
abort reason and a log line. The manual step's own text holds `password=…`; the test acks it
from a second process with `password=…` in the evidence. AWS credentials go in the process
environment (where boto3 reads them) and in the Environment's parameters.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from sandbox import stack
from tests.engine_runs import support

CANARIES: dict[str, str] = {
    "environment-parameter": "S3cr3t-canary-ENVTOKEN",
    "set-value": "S3cr3t-canary-SETKEY",
    "declared-secret": "S3cr3t-canary-DECLARED",
    "probe-url": "S3cr3t-canary-PROBEURL",
    "vendor-url": "S3cr3t-canary-VENDORURL",
    "probe-header": "S3cr3t-canary-HEADER",
    "manual-text": "S3cr3t-canary-MANUAL",
    "ack-evidence": "S3cr3t-canary-ACK",
    "aws-secret-env": "S3cr3t-canary-AWSENV",
    "aws-parameter": "S3cr3t-canary-AWSPARAM",
    "aws-key-id": "AKIAS3CR3TCANARY0001",
    "database-password": "S3cr3t-canary-DBPASS",
}
"""Place -> the secret planted there."""

STEP_MANUAL = "check-vendor-console"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def scenario_document(*, vendor_port: int) -> dict[str, Any]:
    """The Scenario: cordon one zone, a manual step, then a vendor probe that cannot answer."""
    return {
        "apiVersion": "stormdrill.dev/v1",
        "kind": "Scenario",
        "metadata": {"name": "secret-canary"},
        "spec": {
            "description": "Cordon one zone while the vendor's API is checked by hand.",
            "failureMode": "availability-zone",
            "hypothesis": "The shop keeps serving while one zone is cordoned.",
            "parameters": {
                "zone": {"type": "string", "default": "us-east-1a"},
                "webHealthUrl": {"type": "string"},
                "apiToken": {"type": "string", "description": "From the Environment."},
                "vendorApiKey": {"type": "string", "description": "Given with --set."},
                "vendorHeader": {"type": "string", "secret": True},
            },
            "targets": {
                "zone-nodes": {
                    "provider": "kubernetes",
                    "kind": "node",
                    "selector": {"labels": {"topology.kubernetes.io/zone": "{{ zone }}"}},
                    "blastRadius": {"max": 2},
                }
            },
            "steadyState": [
                {
                    "name": "web-healthy",
                    "type": "http",
                    "with": {
                        "url": "{{ webHealthUrl }}",
                        "expectStatus": 200,
                        "headers": {
                            "Authorization": "Bearer {{ apiToken }}",
                            "X-Vendor": "{{ vendorHeader }}",
                            "X-Api-Key": "{{ vendorApiKey }}",
                            "X-Static-Token": CANARIES["probe-header"],
                        },
                    },
                    "interval": "5s",
                    "timeout": "2s",
                    "tolerance": 2,
                },
                {
                    "name": "vendor-api",
                    "type": "http",
                    "with": {
                        "url": (
                            f"http://drill:{CANARIES['vendor-url']}@127.0.0.1:{vendor_port}"
                            "/v1/status"
                        ),
                        "expectStatus": 200,
                    },
                    "interval": "5s",
                    "timeout": "1s",
                    "when": ["during"],
                },
            ],
            "guardrails": {
                "environments": ["sandbox"],
                "maxDuration": "3h",
                "abortWhen": [{"probe": "web-healthy"}],
            },
            "steps": [
                {
                    "name": "cordon-zone",
                    "action": "kubernetes.nodes.cordon",
                    "target": "zone-nodes",
                },
                {
                    "name": STEP_MANUAL,
                    "manual": {
                        "instructions": (
                            "Log in to the vendor console with token {{ apiToken }}, header "
                            "{{ vendorHeader }} and key {{ vendorApiKey }}; if asked, the "
                            f"console password={CANARIES['manual-text']}"
                        ),
                        "assignee": "group:default/team-payments",
                        "timeout": "1h",
                    },
                    "onTimeout": "abort",
                },
                {"name": "vendor-answers", "probe": "vendor-api"},
            ],
            "objectives": {"rto": "10m"},
        },
    }


def environment_file(world: stack.Sandbox, path: Path) -> Path:
    """The sandbox's Environment with the token, a probe URL password and an AWS secret."""

    def plant(document: dict[str, Any]) -> None:
        parameters = document["spec"]["parameters"]
        web = str(parameters["webHealthUrl"])
        parameters["webHealthUrl"] = web.replace(
            "http://", f"http://drill:{CANARIES['probe-url']}@", 1
        )
        parameters["apiToken"] = CANARIES["environment-parameter"]
        parameters["awsSecretAccessKey"] = CANARIES["aws-parameter"]

    return support.environment_variant(world, path, plant)


def process_environment(db_url: str) -> dict[str, str]:
    """Variables for the CLI subprocesses: the store and reports, and planted AWS credentials."""
    return {
        **support.cli_env(db_url),
        "AWS_ACCESS_KEY_ID": CANARIES["aws-key-id"],
        "AWS_SECRET_ACCESS_KEY": CANARIES["aws-secret-env"],
    }


def leaks(text: bytes, *, skip: frozenset[str] = frozenset()) -> list[str]:
    """The places whose canary appears in `text` (also URL-encoded)."""
    found = []
    for place, canary in CANARIES.items():
        if place in skip:
            continue
        if canary.encode() in text or canary.replace("-", "%2D").encode() in text:
            found.append(place)
    return found

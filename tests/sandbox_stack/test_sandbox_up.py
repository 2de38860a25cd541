"""`sandbox up` in a real subprocess: ready when sandbox.json appears, clean exit on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from kubernetes import client, config

from sandbox import aws


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "", parts.port or 80)) == 0


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes], *, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"sandbox up exited early with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {within_s}s")
        time.sleep(0.1)


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "drills.commands.sandbox", "up", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc, state
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_sandbox_up_serves_every_part_and_stops_cleanly_on_sigterm(
    sandbox_process: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, state = sandbox_process
    _wait_for_file(state / "sandbox.json", proc, within_s=45)
    info = json.loads((state / "sandbox.json").read_text())

    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(state / "kubeconfig"), context="sandbox"
    )
    with api:
        nodes = client.CoreV1Api(api).list_node().items
    assert len(nodes) == 6

    ec2 = aws.session().client("ec2", endpoint_url=info["aws"]["endpoint_url"])
    subnets = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["shop-*"]}])
    assert len(subnets["Subnets"]) == 3

    assert httpx.get(info["health"]["inventory"], timeout=5).status_code == 200

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)

    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"stopped" in out
    assert not (state / "sandbox.json").exists()
    urls = [info["kubernetes"]["server"], info["aws"]["endpoint_url"], info["health"]["web"]]
    assert not any(_port_open(url) for url in urls)

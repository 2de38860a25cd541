"""A run records the cluster access it used, so recovery from another shell reaches it too."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills import binding, store
from drills.service import runs
from orchestrator import engine
from orchestrator.providers.kubernetes import connection
from scenarios import loading
from tests.service import world

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: {server}}}
contexts:
- name: {context}
  context: {{cluster: c, user: u}}
current-context: {context}
users:
- name: u
  user: {{token: t}}
"""


def _kubeconfig(path: Path, *, server: str, context: str) -> Path:
    path.write_text(KUBECONFIG.format(server=server, context=context), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> world.Files:
    written = world.write(tmp_path)
    text = written.environment.read_text(encoding="utf-8")
    written.environment.write_text(text + "  kubernetes: {}\n", encoding="utf-8")
    return written


def test_a_run_pins_the_kubeconfig_that_kubectl_rules_chose_and_recovery_reuses_it(
    files: world.Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drilled = _kubeconfig(tmp_path / "drilled", server="https://drilled:6443", context="drill")
    other = _kubeconfig(tmp_path / "other", server="https://other:6443", context="other")
    monkeypatch.setenv("KUBECONFIG", str(drilled))
    request = runs.DrillRequest(target=str(files.scenario), environment=str(files.environment))
    with store.open_store(files.config) as opened:
        run = runs.submit(
            files.config,
            opened,
            binding.make_registry(),
            runs.prepare(files.config, request),
            trigger=engine.Trigger(),
        )
        stored = opened.get_run(run.id)
    monkeypatch.setenv("KUBECONFIG", str(other))  # recovery runs in another shell

    assert stored.record.access is not None
    kube = stored.record.access["kubernetes"]
    assert isinstance(kube, dict)
    assert (kube["kubeconfig"], kube["context"]) == (str(drilled), "drill")
    recovering = engine.with_access(
        loading.load_environment(files.environment).model, stored.record.access
    )
    assert connection.target(recovering).server == "https://drilled:6443"
    # Without the record, the same Environment file would reach the other cluster.
    fresh = loading.load_environment(files.environment).model
    assert connection.target(fresh).server == "https://other:6443"


def test_command_line_overrides_are_recorded_for_whoever_recovers_the_run(
    files: world.Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    given = _kubeconfig(tmp_path / "given", server="https://given:6443", context="g")
    request = runs.DrillRequest(
        target=str(files.scenario),
        environment=str(files.environment),
        access=runs.AccessOverrides(kubeconfig=given, context="g"),
    )
    with store.open_store(files.config) as opened:
        run = runs.submit(
            files.config,
            opened,
            binding.make_registry(),
            runs.prepare(files.config, request),
            trigger=engine.Trigger(),
        )
        record = opened.get_run(run.id).record

    assert record.access is not None
    kube = record.access["kubernetes"]
    assert isinstance(kube, dict)
    assert (kube["kubeconfig"], kube["context"]) == (str(given), "g")
    assert record.to_json()["access"] == record.access  # stored, and read back typed

"""A system that cannot be reached (the store, Kubernetes, AWS) exits 5 with one line, never 3.

Exit 3 stays "invalid input or refused by guardrails"; 5 is "could not plan or run because a
system was unreachable or refused us" (connection refused, timeouts, 5xx, 401/403).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer import testing

from drills import cli
from orchestrator import errors, journal, states
from sandbox import stack
from tests.engine_runs import refusals, support

PASSWORD = "s3cr3t-Pw"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _invoke(env: dict[str, str], *args: str) -> testing.Result:
    return testing.CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200", **env})


STORE_COMMANDS = [
    ("runs", "list"),
    ("runs", "show", "run-1"),
    ("killswitch", "on"),
    ("killswitch", "off"),
    ("recover",),
    ("abort", "run-1"),
    ("ack", "run-1", "step", "--evidence", "done"),
    ("report", "run-1"),
]


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: " ".join(c))
def test_an_unreachable_postgresql_store_is_named_in_one_line_with_its_password_masked(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    port = _free_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/x"
    env = {"STORMDRILL_DATABASE_URL": url, "STORMDRILL_DATA_DIR": str(tmp_path)}

    result = _invoke(env, *command)

    assert result.exit_code == 5, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"postgres:***@127.0.0.1:{port}/x" in lines[0]
    assert "Connection refused" in lines[0]
    assert "Traceback" not in result.output
    assert PASSWORD not in result.output


def test_a_postgresql_host_that_never_answers_is_reported_after_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A listener that never accepts: the TCP handshake completes, the server never speaks.
    monkeypatch.setattr(journal, "POSTGRES_CONNECT_TIMEOUT_S", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(errors.StoreUnreachable) as raised:
            journal.open_store(f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/x")

    assert "timeout" in str(raised.value).lower()
    assert PASSWORD not in str(raised.value)


def test_a_store_folder_that_cannot_be_created_exits_5_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    env = {"STORMDRILL_DATABASE_URL": f"sqlite:///{blocker / 'sub' / 'stormdrill.db'}"}

    result = _invoke(env, "runs", "list")

    assert result.exit_code == 5, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(blocker / "sub" / "stormdrill.db") in result.stderr


def test_a_store_url_with_an_unknown_scheme_is_invalid_input_exit_3(tmp_path: Path) -> None:
    env = {"STORMDRILL_DATABASE_URL": f"mystery://u:{PASSWORD}@h/x"}

    result = _invoke(env, "runs", "list")

    assert result.exit_code == 3, result.output
    assert "not usable" in result.stderr
    assert PASSWORD not in result.output


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path_factory.mktemp("infra-sandbox")) as sandbox:
        support.settle(sandbox)
        yield sandbox


@pytest.fixture
def kube_faults(world: stack.Sandbox) -> Iterator[Any]:
    """The sandbox API server's fault knobs, reset after the test."""
    assert world.kube is not None
    faults = world.kube.faults
    yield faults
    faults.error_rate = 0.0
    faults.timeout_rate = 0.0
    faults.timeout_s = 0.0
    faults.on_request = None


@pytest.fixture
def db_env(tmp_path: Path) -> dict[str, str]:
    return support.cli_env(f"sqlite:///{tmp_path / 'stormdrill.db'}")


def _plan(world: stack.Sandbox, env: dict[str, str], *extra: str) -> testing.Result:
    return _invoke(
        env, "plan", "az-power-loss-kubernetes", "--env", str(world.info.environment), *extra
    )


def test_plan_against_a_kubernetes_api_answering_500_exits_5(
    world: stack.Sandbox, kube_faults: Any, db_env: dict[str, str]
) -> None:
    kube_faults.error_rate = 1.0

    result = _plan(world, db_env)

    assert result.exit_code == 5, result.output
    assert "Internal Server Error" in result.stderr or "500" in result.stderr
    assert "Traceback" not in result.output


def test_plan_against_a_kubernetes_api_timing_out_exits_5(
    world: stack.Sandbox, kube_faults: Any, db_env: dict[str, str]
) -> None:
    kube_faults.timeout_rate = 1.0

    result = _plan(world, db_env)

    assert result.exit_code == 5, result.output
    assert "Gateway Timeout" in result.stderr or "504" in result.stderr


def test_plan_against_a_kubernetes_api_that_forbids_reads_exits_5(
    world: stack.Sandbox, kube_faults: Any, db_env: dict[str, str]
) -> None:
    kube_faults.on_request = refusals.KubeRefusal(method="GET", path_prefix="/api/v1/nodes")
    kube_faults.on_request.armed = True

    result = _plan(world, db_env)

    assert result.exit_code == 5, result.output
    assert "Forbidden" in result.stderr


def test_plan_whose_namespace_opt_in_read_is_forbidden_exits_5_not_refused(
    world: stack.Sandbox, kube_faults: Any, db_env: dict[str, str]
) -> None:
    # Only the namespace labels fail to read: that is an unreachable system, not a refusal.
    kube_faults.on_request = refusals.KubeRefusal(method="GET", path_prefix="/api/v1/namespaces")
    kube_faults.on_request.armed = True

    # The drain evicts pods in `shop`: the plan must read that namespace's opt-in label.
    result = _invoke(db_env, "plan", "az-failure-kubernetes", "--env", str(world.info.environment))

    assert kube_faults.on_request.refused >= 1
    assert result.exit_code == 5, result.output
    assert "Forbidden" in result.stderr and "REFUSED" not in result.stdout


def test_plan_with_the_kubernetes_api_down_exits_5(
    world: stack.Sandbox, db_env: dict[str, str], tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        world.info.kubeconfig.read_text(encoding="utf-8").replace(
            world.info.kube_server.rstrip("/"), f"http://127.0.0.1:{_free_port()}"
        ),
        encoding="utf-8",
    )

    def elsewhere(doc: dict[str, Any]) -> None:
        doc["spec"]["kubernetes"]["kubeconfig"] = str(kubeconfig)

    env_file = support.environment_variant(world, tmp_path / "env.yaml", elsewhere)

    result = _invoke(db_env, "plan", "az-power-loss-kubernetes", "--env", str(env_file))

    assert result.exit_code == 5, result.output
    assert "cannot reach the Kubernetes API server" in result.stderr


def test_a_missing_kubeconfig_is_invalid_input_and_still_exits_3(
    world: stack.Sandbox, db_env: dict[str, str], tmp_path: Path
) -> None:
    def missing(doc: dict[str, Any]) -> None:
        doc["spec"]["kubernetes"]["kubeconfig"] = str(tmp_path / "no-such-kubeconfig")

    env_file = support.environment_variant(world, tmp_path / "env.yaml", missing)

    result = _invoke(db_env, "plan", "az-power-loss-kubernetes", "--env", str(env_file))

    assert result.exit_code == 3, result.output
    assert "no-such-kubeconfig" in result.stderr


def test_run_whose_planning_hits_500s_ends_aborted_with_exit_5_and_says_so(
    world: stack.Sandbox, kube_faults: Any, db_env: dict[str, str]
) -> None:
    kube_faults.error_rate = 1.0

    result = _invoke(
        db_env, "run", "az-power-loss-kubernetes", "--env", str(world.info.environment), "--yes"
    )

    assert result.exit_code == 5, result.output
    with journal.open_store(db_env["STORMDRILL_DATABASE_URL"]) as store:
        (run,) = store.list_runs(limit=5)
        assert run.state is states.RunState.ABORTED
        assert run.record.infrastructure_error is True
        assert run.record.refused is not True
        assert "unreachable" in run.reason
        assert store.entries(run.id) == []


def test_plan_against_an_aws_endpoint_that_denies_exits_5(
    world: stack.Sandbox, db_env: dict[str, str], tmp_path: Path
) -> None:
    proxy = refusals.RefusingAwsProxy(
        world.info.aws_endpoint_url, denied=frozenset({"DescribeSubnets", "DescribeInstances"})
    )
    proxy.armed = True
    with proxy:

        def through_proxy(doc: dict[str, Any]) -> None:
            doc["spec"]["aws"]["endpointUrl"] = proxy.url

        env_file = support.environment_variant(world, tmp_path / "env.yaml", through_proxy)
        result = _invoke(db_env, "plan", "az-failure-aws", "--env", str(env_file))

    assert result.exit_code == 5, result.output
    assert "UnauthorizedOperation" in result.stderr
    assert proxy.refused

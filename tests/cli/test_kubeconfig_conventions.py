"""Cluster and AWS access follow kubectl's and the AWS CLI's conventions (issue 11, item 1).

The Environment may name a kubeconfig and context, else `$KUBECONFIG` (a path list), else
`~/.kube/config` with its current context, else in-cluster in a pod; `--kubeconfig` and
`--context` override. AWS: the Environment's profile or role, else the standard chain;
`--profile` overrides. `plan` first says which cluster and which AWS account it touches.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer import testing

from drills import cli
from drills.service import runs
from orchestrator import errors
from orchestrator.providers.kubernetes import connection
from sandbox import stack
from scenarios import loading
from tests.engine_runs import support

SCENARIO = "az-failure"
"""A bundled scenario that uses both Kubernetes and AWS."""
MOTO_ACCOUNT = "123456789012"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path_factory.mktemp("kubeconfig-sandbox")) as sandbox:
        support.settle(sandbox)
        yield sandbox


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """A tmp store, an empty home (no ~/.kube/config, no ~/.aws) and no $KUBECONFIG."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        **support.cli_env(f"sqlite:///{tmp_path / 'stormdrill.db'}"),
        "HOME": str(home),
        "KUBECONFIG": "",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }


def _invoke(env: dict[str, str], *args: str) -> testing.Result:
    return testing.CliRunner().invoke(cli.app, list(args), env=env)


def _kubeconfig(world: stack.Sandbox) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(world.info.kubeconfig.read_text(encoding="utf-8"))
    return loaded


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _dead_kubeconfig(world: stack.Sandbox, path: Path) -> Path:
    """The sandbox kubeconfig pointed at a port nobody listens on."""
    text = world.info.kubeconfig.read_text(encoding="utf-8")
    dead = text.replace(world.info.kube_server.rstrip("/"), f"http://127.0.0.1:{_free_port()}")
    path.write_text(dead, encoding="utf-8")
    return path


def _two_contexts(world: stack.Sandbox, path: Path) -> Path:
    """A kubeconfig with the sandbox context and a `dead` one (current) for a dead server."""
    document = _kubeconfig(world)
    (cluster,) = document["clusters"]
    (context,) = document["contexts"]
    dead_cluster = {
        "name": "dead",
        "cluster": {**cluster["cluster"], "server": f"http://127.0.0.1:{_free_port()}"},
    }
    dead_context = {"name": "dead", "context": {**context["context"], "cluster": "dead"}}
    document["clusters"].append(dead_cluster)
    document["contexts"].append(dead_context)
    document["current-context"] = "dead"
    return _write(path, document)


def _env_without_kubeconfig(world: stack.Sandbox, path: Path) -> Path:
    def without(doc: dict[str, Any]) -> None:
        del doc["spec"]["kubernetes"]["kubeconfig"]
        del doc["spec"]["kubernetes"]["context"]

    return support.environment_variant(world, path, without)


def _env_with_kubeconfig(world: stack.Sandbox, path: Path, kubeconfig: Path, context: str) -> Path:
    def naming(doc: dict[str, Any]) -> None:
        doc["spec"]["kubernetes"]["kubeconfig"] = str(kubeconfig)
        doc["spec"]["kubernetes"]["context"] = context

    return support.environment_variant(world, path, naming)


def test_plan_with_an_environment_naming_no_kubeconfig_uses_the_kubeconfig_variable(
    world: stack.Sandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    kubeconfig = _write(tmp_path / "kube.yaml", _kubeconfig(world))
    env_file = _env_without_kubeconfig(world, tmp_path / "env.yaml")

    result = _invoke(
        {**cli_env, "KUBECONFIG": str(kubeconfig)}, "plan", SCENARIO, "--env", str(env_file)
    )

    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()[:2]
    assert first.startswith(f"Kubernetes: {world.info.kube_server.rstrip('/')}")
    assert f"context {stack.CONTEXT}" in first and "$KUBECONFIG" in first
    assert second.startswith(f"AWS: account {MOTO_ACCOUNT}")
    assert world.info.region in second


def test_a_kubeconfig_path_list_is_merged_and_its_first_current_context_wins(
    world: stack.Sandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # The first file sets the current context (the sandbox's) and nothing else; the second
    # holds the clusters and says `dead` is current: kubectl takes the first file's choice.
    both = _two_contexts(world, tmp_path / "both.yaml")
    chooser = _write(
        tmp_path / "chooser.yaml",
        {"apiVersion": "v1", "kind": "Config", "current-context": stack.CONTEXT},
    )
    env_file = _env_without_kubeconfig(world, tmp_path / "env.yaml")
    paths = f"{tmp_path / 'absent.yaml'}:{chooser}:{both}"

    result = _invoke({**cli_env, "KUBECONFIG": paths}, "plan", SCENARIO, "--env", str(env_file))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Kubernetes: {world.info.kube_server.rstrip('/')}")
    assert f"context {stack.CONTEXT}," in result.stdout.splitlines()[0]


def test_without_any_kubeconfig_the_home_kubeconfig_and_its_current_context_are_used(
    world: stack.Sandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    kube_dir = Path(cli_env["HOME"]) / ".kube"
    kube_dir.mkdir()
    _write(kube_dir / "config", _kubeconfig(world))
    env_file = _env_without_kubeconfig(world, tmp_path / "env.yaml")

    result = _invoke(cli_env, "plan", SCENARIO, "--env", str(env_file))

    assert result.exit_code == 0, result.output
    assert str(kube_dir / "config") in result.stdout.splitlines()[0]


def test_kubeconfig_option_overrides_the_environments_kubeconfig(
    world: stack.Sandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    dead = _dead_kubeconfig(world, tmp_path / "dead.yaml")
    env_file = _env_with_kubeconfig(world, tmp_path / "env.yaml", dead, stack.CONTEXT)
    good = _write(tmp_path / "good.yaml", _kubeconfig(world))

    refused = _invoke(cli_env, "plan", SCENARIO, "--env", str(env_file))
    result = _invoke(cli_env, "plan", SCENARIO, "--env", str(env_file), "--kubeconfig", str(good))

    assert refused.exit_code == 5, refused.output
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Kubernetes: {world.info.kube_server.rstrip('/')}")
    assert str(good) in result.stdout.splitlines()[0]


def test_context_option_overrides_the_environments_context(
    world: stack.Sandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    kubeconfig = _two_contexts(world, tmp_path / "two.yaml")
    env_file = _env_with_kubeconfig(world, tmp_path / "env.yaml", kubeconfig, "dead")

    refused = _invoke(cli_env, "plan", SCENARIO, "--env", str(env_file))
    result = _invoke(cli_env, "plan", SCENARIO, "--env", str(env_file), "--context", stack.CONTEXT)

    assert refused.exit_code == 5, refused.output
    assert result.exit_code == 0, result.output
    assert f"context {stack.CONTEXT}," in result.stdout.splitlines()[0]


def test_a_context_the_kubeconfig_lacks_exits_3_naming_the_contexts_it_has(
    world: stack.Sandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    kubeconfig = _two_contexts(world, tmp_path / "two.yaml")
    env_file = _env_with_kubeconfig(world, tmp_path / "env.yaml", kubeconfig, stack.CONTEXT)

    result = _invoke(cli_env, "plan", SCENARIO, "--env", str(env_file), "--context", "nope")

    assert result.exit_code == 3, result.output
    message = " ".join(result.stderr.split())
    assert "'nope' is not in" in message and str(kubeconfig) in message
    assert f"contexts there: {stack.CONTEXT}, dead" in message
    assert "Traceback" not in result.output


def test_recover_env_takes_the_context_override_too(
    world: stack.Sandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env_file = support.environment_variant(world, tmp_path / "env.yaml", lambda _doc: None)

    result = _invoke(cli_env, "recover", "--env", str(env_file), "--context", "nope", "--dry-run")

    assert result.exit_code == 3, result.output
    assert "'nope' is not in" in " ".join(result.stderr.split())


def test_plan_json_says_which_cluster_and_aws_account_it_touches(
    world: stack.Sandbox, cli_env: dict[str, str]
) -> None:
    result = _invoke(
        cli_env, "plan", SCENARIO, "--env", str(world.info.environment), "--format", "json"
    )

    assert result.exit_code == 0, result.output
    touches = json.loads(result.stdout)["touches"]
    assert touches["kubernetes"] == {
        "server": world.info.kube_server.rstrip("/"),
        "context": stack.CONTEXT,
    }
    assert touches["aws"]["account"] == MOTO_ACCOUNT
    assert touches["aws"]["arn"].startswith("arn:aws:")
    assert touches["aws"]["region"] == world.info.region


def test_profile_option_picks_the_aws_profile_and_an_unknown_one_exits_3(
    world: stack.Sandbox, cli_env: dict[str, str]
) -> None:
    Path(cli_env["AWS_CONFIG_FILE"]).write_text(
        "[profile drills]\naws_access_key_id = AKIDRILLS\naws_secret_access_key = s\n",
        encoding="utf-8",
    )
    env_file = str(world.info.environment)

    chosen = _invoke(cli_env, "plan", SCENARIO, "--env", env_file, "--profile", "drills")
    unknown = _invoke(cli_env, "plan", SCENARIO, "--env", env_file, "--profile", "nosuch")

    assert chosen.exit_code == 0, chosen.output
    assert f"AWS: account {MOTO_ACCOUNT}" in chosen.stdout.splitlines()[1]
    assert unknown.exit_code == 3, unknown.output
    message = " ".join(unknown.stderr.split())
    assert "AWS profile 'nosuch' not found" in message and "profiles there: drills" in message


def test_access_overrides_replace_the_environments_access_and_keep_the_rest(
    world: stack.Sandbox, tmp_path: Path
) -> None:
    environment = loading.load_environment(world.info.environment).model
    overrides = runs.AccessOverrides(kubeconfig=tmp_path / "k.yaml", profile="drills")

    changed = overrides.apply(environment)

    assert runs.AccessOverrides().apply(environment) is environment
    kube, aws = changed.spec.kubernetes, changed.spec.aws
    assert kube is not None and aws is not None
    assert kube.kubeconfig == (tmp_path / "k.yaml").resolve() and kube.context is None
    assert kube.allow_cluster_scope is True and kube.require_namespace_opt_in is True
    assert aws.profile == "drills" and aws.role_arn is None
    assert aws.endpoint_url == world.info.aws_endpoint_url


def test_in_a_pod_without_a_kubeconfig_the_service_account_is_used(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t", encoding="utf-8")
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    in_pod = connection.locate(None, environ=pod, home=tmp_path, token_file=token)
    with pytest.raises(errors.ProviderPermanent) as nowhere:
        connection.locate(None, environ={}, home=tmp_path, token_file=token)

    assert in_pod.kind is connection.SourceKind.IN_CLUSTER
    assert "export KUBECONFIG or pass --kubeconfig" in str(nowhere.value)

"""`ApiSettings.load`: `STORMDRILL_*` variables over a TOML or YAML file over the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.api import config as api_config


def test_nothing_given_is_the_defaults_and_the_process_environment_is_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORMDRILL_PORT", "1234")

    loaded = api_config.ApiSettings.load({})

    assert loaded == api_config.ApiSettings()
    assert loaded.port == 8700 and api_config.ApiSettings().port == 8700


def test_variables_win_over_the_file_and_lists_and_mappings_are_parsed(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "port: 9000\nhost: 0.0.0.0\nscenario_dirs: [/srv/a]\ndriver_workers: 2\n",
        encoding="utf-8",
    )
    env = {
        "STORMDRILL_PORT": "9100",
        "STORMDRILL_SCENARIO_DIRS": "/srv/b:/srv/c",
        "STORMDRILL_PREFLIGHT_HOOKS": "https://a.example/hook,https://b.example/hook",
        "STORMDRILL_OIDC_GROUP_ROLES": '{"sre": "operator"}',
        "STORMDRILL_ENVIRONMENT_DIRS": '["/srv/env"]',
    }

    loaded = api_config.ApiSettings.load(env, config)

    assert (loaded.port, loaded.host, loaded.driver_workers) == (9100, "0.0.0.0", 2)
    assert loaded.scenario_dirs == (Path("/srv/b"), Path("/srv/c"))
    assert loaded.environment_dirs == (Path("/srv/env"),)
    assert loaded.preflight_hooks == ("https://a.example/hook", "https://b.example/hook")
    assert loaded.oidc_group_roles == {"sre": "operator"}


def test_a_toml_file_is_read_too(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('port = 9001\nenvironment_dirs = ["/srv/env"]\n', encoding="utf-8")

    loaded = api_config.ApiSettings.load({}, config)

    assert loaded.port == 9001 and loaded.environment_dirs == (Path("/srv/env"),)


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("port = [", ".toml", "not valid TOML"),
        ("port: [", ".yaml", "not valid YAML"),
        ("- port\n", ".yaml", "must be a mapping"),
        ("prot: 1\n", ".yaml", "unknown key(s) prot"),
        ("port: many\n", ".yaml", "serve.yaml: port: Input should be a valid integer"),
    ],
)
def test_a_file_that_cannot_be_used_names_itself_and_the_key(
    tmp_path: Path, text: str, suffix: str, message: str
) -> None:
    config = tmp_path / f"serve{suffix}"
    config.write_text(text, encoding="utf-8")

    with pytest.raises(api_config.ConfigInvalid, match="serve") as caught:
        api_config.ApiSettings.load({}, config)

    assert message in str(caught.value)


def test_a_bad_variable_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(api_config.ConfigInvalid) as bad_json:
        api_config.ApiSettings.load({"STORMDRILL_OIDC_GROUP_ROLES": "sre=operator"})
    with pytest.raises(api_config.ConfigInvalid) as bad_int:
        api_config.ApiSettings.load({"STORMDRILL_DRIVER_WORKERS": "0"})
    with pytest.raises(api_config.ConfigInvalid) as missing:
        api_config.ApiSettings.load({}, tmp_path / "absent.yaml")

    assert str(bad_json.value).startswith("STORMDRILL_OIDC_GROUP_ROLES: write a JSON object")
    assert "STORMDRILL_DRIVER_WORKERS: driver_workers" in str(bad_int.value)
    assert "absent.yaml: cannot read the config file" in str(missing.value)


def test_every_serve_setting_is_described_in_docs_settings() -> None:
    document = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    variables = [f"STORMDRILL_{name.upper()}" for name in api_config.ApiSettings.model_fields]

    missing = [v for v in [*variables, api_config.CONFIG_ENV_VAR] if f"`{v}`" not in document]

    assert missing == [], f"describe these in docs/settings.md: {', '.join(missing)}"

from pathlib import Path

import pytest

from services.common.config import SERVICES, ConfigError, Settings, documented_variables, markdown_table
from services.common.config import main as config_main

README = Path(__file__).resolve().parents[3] / "README.md"
KEY = "k1:" + "A" * 43  # 32 bytes of base64url
PRODUCTION = {
    "MBT_ENV": "production",
    "MBT_USER_TOKEN_KEYS": KEY,
    "MBT_SERVICE_TOKEN_KEYS": "k2:" + "B" * 43,
    "MBT_AUDIT_ACTOR_KEY": "C" * 43,
    "MBT_PUBLIC_ORIGINS": "https://app.mbt.example",
}


def test_defaults_are_the_embedded_default():
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.dev_login is True
    assert settings.service("orders").port == 50052
    assert settings.service("orders").database_url == "sqlite:///var/orders.db"
    assert settings.service("accounts").target == "127.0.0.1:50051"


def test_production_turns_dev_login_off_and_refuses_it_on():
    assert Settings.from_env(PRODUCTION).dev_login is False
    with pytest.raises(ConfigError, match="MBT_DEV_LOGIN"):
        Settings.from_env({**PRODUCTION, "MBT_DEV_LOGIN": "1"})


@pytest.mark.parametrize("missing", ["MBT_USER_TOKEN_KEYS", "MBT_SERVICE_TOKEN_KEYS", "MBT_AUDIT_ACTOR_KEY"])
def test_production_refuses_to_start_on_the_development_keys(missing):
    environ = {key: value for key, value in PRODUCTION.items() if key != missing}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(environ)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "mbt-gateway", "192.168.1.20"])
@pytest.mark.parametrize(
    "missing",
    [("MBT_USER_TOKEN_KEYS",), ("MBT_SERVICE_TOKEN_KEYS",), ("MBT_USER_TOKEN_KEYS", "MBT_SERVICE_TOKEN_KEYS")],
)
def test_a_process_reachable_from_other_machines_refuses_the_development_keys(host, missing):
    keys = {"MBT_USER_TOKEN_KEYS": KEY, "MBT_SERVICE_TOKEN_KEYS": "k2:" + "B" * 43}
    environ = {"MBT_BIND_HOST": host, **{k: v for k, v in keys.items() if k not in missing}}
    with pytest.raises(ConfigError, match=f"{missing[0]}.*development keys.*MBT_ALLOW_DEV_KEYS"):
        Settings.from_env(environ)
    assert Settings.from_env({**environ, "MBT_ALLOW_DEV_KEYS": "1"}).bind_host == host
    assert Settings.from_env({**environ, **keys}).bind_host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_a_loopback_process_starts_on_the_development_keys(host):
    assert Settings.from_env({"MBT_BIND_HOST": host}).user_token_keys == ()


def test_production_refuses_the_development_keys_switch():
    with pytest.raises(ConfigError, match="MBT_ALLOW_DEV_KEYS"):
        Settings.from_env({**PRODUCTION, "MBT_ALLOW_DEV_KEYS": "1"})


def test_production_refuses_plain_http_origins():
    with pytest.raises(ConfigError, match="https"):
        Settings.from_env({**PRODUCTION, "MBT_CORS_ORIGINS": "http://app.mbt.example"})


@pytest.mark.parametrize(
    "value, message",
    [
        ("nokid", "kid:secret"),
        ("k1:" + "A" * 20, "at least 32 bytes"),
        (f"{KEY},{KEY}", "share a kid"),
        ("k1:***", "base64url"),
    ],
)
def test_bad_token_keys_are_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"MBT_USER_TOKEN_KEYS": value})


def test_user_and_service_keys_must_differ():
    with pytest.raises(ConfigError, match="must not share a secret"):
        Settings.from_env({"MBT_USER_TOKEN_KEYS": KEY, "MBT_SERVICE_TOKEN_KEYS": "other" + KEY[2:]})


def test_allowed_hosts_default_to_the_web_apps_hosts_and_loopback():
    assert Settings.from_env({}).allowed_hosts == ("localhost", "127.0.0.1", "::1")
    assert Settings.from_env(PRODUCTION).allowed_hosts == ("app.mbt.example", "localhost", "127.0.0.1", "::1")
    assert Settings.from_env({"MBT_ALLOWED_HOSTS": "API.mbt.example, [::1]"}).allowed_hosts == (
        "api.mbt.example",
        "::1",
    )


@pytest.mark.parametrize("value", ["https://api.mbt.example", "mbt.example/path", "user@mbt.example"])
def test_allowed_hosts_are_host_names(value):
    with pytest.raises(ConfigError, match="MBT_ALLOWED_HOSTS"):
        Settings.from_env({"MBT_ALLOWED_HOSTS": value})


def test_token_keys_never_show_in_the_settings_repr():
    settings = Settings.from_env({"MBT_USER_TOKEN_KEYS": KEY})
    assert "AAAA" not in repr(settings)


@pytest.mark.parametrize(
    "name, value",
    [
        ("MBT_GATEWAY_PORT", "eighty"),
        ("MBT_TRADING_DISABLED", "maybe"),
        ("MBT_ENV", "staging"),
        ("MBT_ORDERS_PORT", "x"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_every_variable_is_in_the_readme_table():
    readme = README.read_text()
    assert markdown_table() in readme, "README's configuration table is stale: paste `python -m services.common.config`"
    for name in documented_variables():
        assert f"`{name}`" in readme


def test_the_effective_values_show_what_this_environment_sets_with_secrets_redacted(capsys):
    environ = {
        "MBT_ORDERS_PORT": "6000",
        "MBT_USER_TOKEN_KEYS": KEY,
        "ALPACA_MARKET_DATA_SECRET": "alpaca-s3cret",
        "MBT_ORDERS_DATABASE_URL": "postgresql+psycopg://mbt:hunter2@db:5432/orders",
        "MBT_REDIS_URL": "redis://:redis-pw@cache:6379/0",
    }
    assert config_main(["--effective"], environ) == 0
    out = capsys.readouterr().out
    values = {line.split()[0]: line.split(maxsplit=1)[1] for line in out.splitlines()}
    assert values["MBT_ORDERS_PORT"] == "6000  (env)"
    assert values["MBT_ORDERS_TARGET"] == "127.0.0.1:6000  (derived)"
    assert values["MBT_GATEWAY_PORT"] == "8080  (default)"
    assert values["MBT_USER_TOKEN_KEYS"] == "(set, redacted)  (env)"
    assert values["ALPACA_MARKET_DATA_SECRET"] == "(set, redacted)  (env)"
    assert values["MBT_ORDERS_DATABASE_URL"] == "postgresql+psycopg://mbt:***@db:5432/orders  (env)"
    assert values["MBT_REDIS_URL"] == "redis://:***@cache:6379/0  (env)"
    per_service = {
        f"MBT_{service.upper()}_{suffix}" for service in SERVICES for suffix in ("PORT", "DATABASE_URL", "TARGET")
    }
    assert set(values) == {name for name in documented_variables() if "<" not in name} | per_service
    for secret in ("AAAA", "alpaca-s3cret", "hunter2", "redis-pw"):
        assert secret not in out


def test_the_effective_values_of_a_broken_environment_name_the_variable(capsys):
    assert config_main(["--effective"], {"MBT_ORDERS_PORT": "x"}) == 2
    assert "MBT_ORDERS_PORT" in capsys.readouterr().err


def test_the_readme_table_is_still_the_default(capsys):
    assert config_main([], {"MBT_ORDERS_PORT": "6000"}) == 0
    assert capsys.readouterr().out == markdown_table() + "\n"

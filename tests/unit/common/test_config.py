from pathlib import Path

import pytest

from services.common.config import ConfigError, Settings, documented_variables, markdown_table

README = Path(__file__).resolve().parents[3] / "README.md"


def test_defaults_are_the_embedded_default():
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.dev_login is True
    assert settings.service("orders").port == 50052
    assert settings.service("orders").database_url == "sqlite:///var/orders.db"
    assert settings.service("accounts").target == "127.0.0.1:50051"


def test_production_turns_dev_login_off_and_refuses_it_on():
    assert Settings.from_env({"MBT_ENV": "production"}).dev_login is False
    with pytest.raises(ConfigError, match="MBT_DEV_LOGIN"):
        Settings.from_env({"MBT_ENV": "production", "MBT_DEV_LOGIN": "1"})


@pytest.mark.parametrize("name, value", [("MBT_GATEWAY_PORT", "eighty"), ("MBT_TRADING_DISABLED", "maybe"),
                                         ("MBT_ENV", "staging"), ("MBT_ORDERS_PORT", "x")])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_every_variable_is_in_the_readme_table():
    readme = README.read_text()
    assert markdown_table() in readme, "README's configuration table is stale: paste `python -m services.common.config`"
    for name in documented_variables():
        assert f"`{name}`" in readme

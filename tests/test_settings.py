"""netmon.settings: environment variables validated (pydantic-settings), one line per problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netmon.errors import ConfigError, ConfigProblem
from netmon.resources import example_inventory
from netmon.settings import Settings


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return [str(p) for p in info.value.problems]


def test_defaults_without_environment() -> None:
    s = Settings.from_env({})
    assert s.config == example_inventory()
    assert s.data_dir == Path.home() / ".local" / "state" / "netmon"
    assert s.database_url == f"sqlite:///{s.data_dir / 'netmon.db'}"
    assert (s.host, s.port, s.icmp_mode, s.log_level) == ("127.0.0.1", 8000, "auto", "info")
    assert (s.icmp_rate_limit, s.retention_days, s.snmp_profiles) == (None, 35.0, None)


def test_systemd_state_directory_and_every_variable() -> None:
    s = Settings.from_env(
        {
            "STATE_DIRECTORY": "/var/lib/netmon:/var/lib/other",
            "NETMON_CONFIG": "/etc/netmon/inventory.yaml",
            "NETMON_HOST": "0.0.0.0",
            "NETMON_PORT": "9000",
            "NETMON_ICMP_MODE": "DGRAM",
            "NETMON_ICMP_RATE_LIMIT": "2000",
            "NETMON_LOG_LEVEL": "Warning",
            "NETMON_RETENTION_DAYS": "0",
            "NETMON_SNMP_PROFILES": "/etc/netmon/snmp-profiles",
            "NETMON_SNMP_COMMUNITY": "public",  # an inventory secret, not a setting: ignored
        }
    )
    assert s.data_dir == Path("/var/lib/netmon")
    assert s.database_url == "sqlite:////var/lib/netmon/netmon.db"
    assert s.config == Path("/etc/netmon/inventory.yaml")
    assert (s.host, s.port, s.icmp_mode, s.log_level) == ("0.0.0.0", 9000, "dgram", "warning")
    assert (s.icmp_rate_limit, s.retention_days) == (2000.0, 0.0)
    assert s.snmp_profiles == Path("/etc/netmon/snmp-profiles")


def test_data_dir_wins_over_state_directory_and_database_url_over_both() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/netmon", "NETMON_DATA_DIR": "/srv/netmon"}
    assert Settings.from_env(env).database_url == "sqlite:////srv/netmon/netmon.db"
    env["NETMON_DATABASE_URL"] = "postgresql+psycopg://netmon@db/netmon"
    assert Settings.from_env(env).database_url == "postgresql+psycopg://netmon@db/netmon"


def test_an_empty_variable_counts_as_unset() -> None:
    s = Settings.from_env({"NETMON_PORT": "", "NETMON_ICMP_RATE_LIMIT": "", "NETMON_CONFIG": ""})
    assert (s.port, s.icmp_rate_limit, s.config) == (8000, None, example_inventory())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NETMON_PORT", "abc", "Input should be a valid integer, unable to parse string as an integer (got 'abc')"),
        ("NETMON_PORT", "70000", "Input should be less than or equal to 65535 (got '70000')"),
        ("NETMON_LOG_LEVEL", "loud", "must be one of debug, info, warning, error (got 'loud')"),
        ("NETMON_ICMP_MODE", "x", "must be one of auto, raw, dgram (got 'x')"),
        ("NETMON_ICMP_RATE_LIMIT", "0", "Input should be greater than 0 (got '0')"),
        ("NETMON_RETENTION_DAYS", "-1", "Input should be greater than or equal to 0 (got '-1')"),
        ("NETMON_HOST", " ", "String should have at least 1 character (got ' ')"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_config_problem(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert info.value.problems == [ConfigProblem("environment", None, name, message)]
    assert str(info.value) == f"environment: {name}: {message}"


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"NETMON_PORT": "abc", "NETMON_LOG_LEVEL": "loud", "NETMON_ICMP_MODE": "x"})
    assert sorted(p.split(":")[1].strip() for p in found) == [
        "NETMON_ICMP_MODE",
        "NETMON_LOG_LEVEL",
        "NETMON_PORT",
    ]
    assert all("Traceback" not in p and "\n" not in p for p in found)


def test_the_database_url_is_never_echoed() -> None:
    found = problems({"NETMON_DATABASE_URL": "   "})
    assert found == ["environment: NETMON_DATABASE_URL: String should have at least 1 character"]


def test_overrides_are_validated_and_named_as_flags() -> None:
    s = Settings.from_env({"NETMON_DATA_DIR": "/srv/netmon"})
    assert s.with_overrides(port=9001, host=None).port == 9001
    assert s.with_overrides(config=Path("x.yaml"), log_level=None).config == Path("x.yaml")
    with pytest.raises(ConfigError) as info:
        s.with_overrides(port=70000, icmp_mode="fast")
    assert sorted(map(str, info.value.problems)) == [
        "command line: --icmp-mode: must be one of auto, raw, dgram (got 'fast')",
        "command line: --port: Input should be less than or equal to 65535 (got 70000)",
    ]


def test_a_new_data_dir_moves_the_default_database() -> None:
    s = Settings.from_env({"NETMON_DATA_DIR": "/srv/a"}).with_overrides(data_dir=Path("/srv/b"))
    assert s.database_url == "sqlite:////srv/b/netmon.db"


def test_docstring_names_every_variable() -> None:
    """The module docstring (and so deploy/systemd/netmon.env.example, checked against it by
    tests/deploy/test_deploy_systemd.py) names the variable of every field."""
    import netmon.settings as module

    named = set(re.findall(r"\bNETMON_[A-Z_]+\b", module.__doc__ or ""))
    assert {f"NETMON_{name.upper()}" for name in Settings.model_fields} == named


@pytest.mark.parametrize(
    ("env", "configured", "closed"),
    [({}, False, False), ({}, True, True),
     ({"NETMON_API_READ_REQUIRES_TOKEN": "false"}, True, False),
     ({"NETMON_API_READ_REQUIRES_TOKEN": "true"}, False, True)],
)  # fmt: skip
def test_read_requires_token_env_overrides_the_inventory(
    env: dict[str, str], configured: bool, closed: bool
) -> None:
    assert Settings.from_env(env).read_requires_token(configured) is closed

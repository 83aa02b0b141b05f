"""SNMP profiles (strict YAML, one invalid-*.yaml per rule) and SnmpSettings validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from probes.snmp import SnmpSettings
from probes.snmp_profiles import DEFAULT_DIR, ProfileError, load_profiles

INVALID = sorted((Path(__file__).parent / "snmp" / "profiles").glob("invalid-*.yaml"))


def test_shipped_profiles_load_with_their_roles() -> None:
    profiles = load_profiles(DEFAULT_DIR)
    assert set(profiles) >= {
        "generic", "cisco-wlc", "ruckus-smartzone", "ruckus-zonedirector", "cambium-cnpilot"
    }  # fmt: skip
    generic = profiles["generic"]
    assert generic.interfaces is not None and generic.aps is None
    assert generic.tables["if"].columns["in_octets"].oid == "1.3.6.1.2.1.31.1.1.1.6"
    wlc = profiles["cisco-wlc"]
    assert wlc.interfaces == generic.interfaces  # inherited through `extends: generic`
    assert wlc.aps is not None and wlc.aps.clients is not None
    assert wlc.aps.clients.table == "radio"
    assert wlc.tables["ap"].columns["status"].oid == "1.3.6.1.4.1.14179.2.2.1.1.6"
    assert wlc.tables["radio"].columns["clients"].oid == "1.3.6.1.4.1.14179.2.2.2.1.15"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_profile_names_its_rule(path: Path, tmp_path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    shutil.copy(path, tmp_path / path.name)
    with pytest.raises(ProfileError) as info:
        load_profiles(tmp_path)
    # expected: "LINE: field: message"
    assert str(info.value) == f"{tmp_path / path.name}:{expected}"


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    for path in INVALID[:3]:
        shutil.copy(path, tmp_path / path.name)
    with pytest.raises(ProfileError) as info:
        load_profiles(tmp_path)
    assert len(str(info.value).splitlines()) == 3


def test_a_child_overrides_and_adds_tables(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_DIR / "generic.yaml", tmp_path)
    (tmp_path / "vendor-x.yaml").write_text(
        "name: vendor-x\nextends: generic\n"
        "scalars:\n  aps_joined: {oid: .1.3.6.1.4.1.99.1.0, type: gauge}\n"
    )
    profile = load_profiles(tmp_path)["vendor-x"]
    assert profile.scalars["aps_joined"].oid == "1.3.6.1.4.1.99.1.0"  # leading dot dropped
    assert "sys_uptime" in profile.scalars and profile.interfaces is not None


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no \\*.yaml SNMP profiles found"):
        load_profiles(tmp_path)


# -- SnmpSettings ----------------------------------------------------------------------------


def test_settings_repr_hides_every_secret() -> None:
    settings = SnmpSettings(
        version="3", user="noc", auth_key="auth-secret-1", priv_key="priv-secret-2"
    )
    text = f"{settings!r} {settings}"
    assert "auth-secret-1" not in text and "priv-secret-2" not in text
    assert "user='noc'" in text and settings.security_level == "authPriv"
    v2 = SnmpSettings(community="community-secret")
    assert "community-secret" not in repr(v2) and v2.security_level == "community"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": "2"}, "version: Input should be '1', '2c' or '3'"),
        ({"community": ""}, "SNMPv2c needs a community"),
        ({"version": "3"}, "SNMPv3 needs a user"),
        ({"version": "3", "user": "u", "priv_key": "priv-secret"},
         "priv_key needs an auth_key (authPriv)"),
        ({"version": "3", "user": "u", "auth_key": "short7!"},
         "auth_key: must be at least 8 characters (RFC 3414)"),
        ({"version": "3", "user": "u", "auth_protocol": "MD5", "auth_key": "auth-secret"},
         "auth_protocol: Input should be 'SHA', 'SHA-224', 'SHA-256', 'SHA-384' or 'SHA-512'"),
        ({"version": "3", "user": "u", "priv_protocol": "DES", "auth_key": "auth-secret"},
         "priv_protocol: Input should be 'AES', 'AES-192' or 'AES-256'"),
        ({"port": 0}, "port: Input should be greater than or equal to 1"),
        ({"timeout": 0}, "timeout: Input should be greater than 0"),
        ({"retries": -1}, "retries: Input should be greater than or equal to 0"),
        ({"max_poll_time": 0}, "max_poll_time: Input should be greater than 0"),
        ({"max_repetitions": 0}, "max_repetitions: Input should be greater than or equal to 1"),
        ({"max_walks": 0}, "max_walks: Input should be greater than or equal to 1"),
        ({"max_walks": 17}, "max_walks: Input should be less than or equal to 16"),
        ({"version": "3", "user": "u", "auth_key": "auth-secret", "priv_key": "short"},
         "priv_key: must be at least 8 characters (RFC 3414)"),
        ({"version": "3", "user": "u", "timeout": 0, "port": 70000},
         "timeout: Input should be greater than 0; port: Input should be less than or equal to 65535"),
        ({"profile": "../etc"}, "profile: String should match pattern '^[a-z][a-z0-9_-]{0,63}$'"),
    ],
)  # fmt: skip
def test_settings_validation(kwargs: dict[str, object], message: str) -> None:
    kwargs = {"community": "community-secret", **kwargs}
    with pytest.raises(ValueError) as info:
        SnmpSettings(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == f"invalid SNMP settings: {message}"
    assert "community-secret" not in str(info.value) and "short7!" not in str(info.value)


def test_settings_from_mapping_is_strict() -> None:
    settings = SnmpSettings.from_mapping({"version": 3, "user": "u", "auth_key": "auth-secret"})
    assert settings.version == "3" and settings.security_level == "authNoPriv"
    assert (settings.community, settings.priv_key, settings.timeout) == ("", "", 2.0)
    with pytest.raises(ValueError, match=r"unknown key\(s\) comunity"):
        SnmpSettings.from_mapping({"comunity": "x"})


def test_settings_from_a_validated_inventory() -> None:
    from netmon.inventory import parse_inventory
    from probes.snmp_settings import DeviceSnmp

    inv = parse_inventory("""
snmp:
  credentials:
    v3: {version: 3, user: noc, auth_key: auth-secret-1, priv_protocol: AES-256, priv_key: priv-secret-2, port: 1161}
  defaults: {timeout: 500ms, retries: 2, max_walks: 2}
""")
    settings = SnmpSettings.from_config(
        inv.snmp.credentials["v3"],
        DeviceSnmp(credentials="v3", profile="cisco-wlc"),
        inv.snmp.defaults,
    )
    assert settings == SnmpSettings(
        version="3", user="noc", auth_key="auth-secret-1", priv_protocol="AES-256",
        priv_key="priv-secret-2", port=1161, profile="cisco-wlc", timeout=0.5, retries=2, max_walks=2,
    )  # fmt: skip
    assert settings.security_level == "authPriv" and "secret" not in repr(settings)


def test_a_later_directory_replaces_a_profile_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "generic.yaml").write_text(
        "name: generic\ndescription: site copy\n"
        "scalars:\n  sys_uptime: {oid: 1.3.6.1.2.1.1.3.0, type: timeticks}\n"
    )
    profiles = load_profiles(DEFAULT_DIR, tmp_path)
    assert profiles["generic"].description == "site copy"
    assert profiles["cisco-wlc"].scalars.keys() >= {"sys_uptime"}  # extends the site's generic
    assert profiles["cisco-wlc"].aps is not None and profiles["cisco-wlc"].interfaces is None
    assert load_profiles(DEFAULT_DIR)["generic"].description != "site copy"

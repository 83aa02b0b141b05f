"""Inventory validation: one invalid file per rule, each asserting its exact messages.

The expected messages are the ``# expect:`` lines at the top of each invalid-*.yaml file.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from netmon.errors import ConfigError
from netmon.inventory import load_inventory, parse_inventory
from netmon.settings import EXAMPLE_INVENTORY
from tests.conftest import INVENTORIES

INVALID = sorted(INVENTORIES.glob("invalid-*.yaml"))


def expected(path: Path) -> list[str]:
    return [ln.removeprefix("# expect: ").rstrip() for ln in path.read_text().splitlines()
            if ln.startswith("# expect: ")]  # fmt: skip


def test_there_is_one_file_per_rule() -> None:
    assert len(INVALID) >= 20
    assert all(expected(p) for p in INVALID)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_file_gives_exact_messages(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)
    with pytest.raises(ConfigError) as info:
        load_inventory(path.name)
    assert [str(p) for p in info.value.problems] == expected(path)


def test_valid_small_inventory_merges_overrides() -> None:
    inv = load_inventory(INVENTORIES / "valid-small.yaml")
    rims, bundu, unwired = inv.sites
    assert inv.probe_settings(bundu).interval == 20.0
    assert inv.probe_settings(bundu).timeout == 0.5  # inherited
    assert inv.probe_settings(rims).interval == 10.0
    assert inv.policy_for(rims).ap_min_up_ratio == 0.8
    assert inv.policy_for(bundu).ap_min_up_ratio == 0.9
    assert inv.policy_for(rims).window == 3600.0
    assert unwired.devices == []


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = """
sites:
  - {id: a, name: A, district: Ranchi, type: chc, devices: [{name: w, role: wan, address: 127.1.1.1, parent: x}]}
  - {id: a, name: B, district: Nowhere, type: chc}
"""
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "f.yaml")
    fields = [p.field for p in info.value.problems]
    assert fields == ["sites[0].devices[0].parent", "sites[1].id", "sites[1].district"]


def test_other_states_accept_free_text_districts() -> None:
    inv = parse_inventory("state: Odisha\nsites: [{id: a, name: A, district: Khordha, type: chc}]")
    assert inv.sites[0].district == "Khordha"


def test_bundled_example_is_valid_and_complete() -> None:
    inv = load_inventory(EXAMPLE_INVENTORY)
    types = [s.type for s in inv.sites]
    assert types.count("medical_college") == 6
    assert types.count("district_hospital") == 24
    assert types.count("chc") >= 30
    assert len({s.district for s in inv.sites if s.type == "district_hospital"}) == 24
    assert all(d.address.startswith("127.") for s in inv.sites for d in s.devices)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netmon.cli", *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_check_config_cli_rejects_with_file_line_field() -> None:
    bad = INVENTORIES / "invalid-role.yaml"
    proc = run_cli("check-config", str(INVENTORIES / "valid-small.yaml"), str(bad))
    assert proc.returncode == 78  # EX_CONFIG
    assert "valid-small.yaml: OK (3 sites, 7 devices)" in proc.stdout
    assert f"{bad}:8: sites[0].devices[0].role: Input should be" in proc.stderr


def test_check_config_cli_accepts_example() -> None:
    proc = run_cli("check-config", str(EXAMPLE_INVENTORY))
    assert proc.returncode == 0, proc.stderr


def test_snmp_secrets_come_from_env_or_file_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETMON_TEST_COMMUNITY", "s3cret-community")
    key = tmp_path / "auth.key"
    key.write_text("s3cret-auth-key\n")
    inv = parse_inventory(f"""
snmp:
  credentials:
    ro: {{version: 2c, community: {{env: NETMON_TEST_COMMUNITY}}}}
    v3: {{version: 3, user: netmon, auth_protocol: SHA-256, auth_key: {{file: {key}}}}}
""")
    ro, v3 = inv.snmp.credentials["ro"], inv.snmp.credentials["v3"]
    assert ro.community is not None and ro.community.get_secret_value() == "s3cret-community"
    assert v3.auth_key is not None and v3.auth_key.get_secret_value() == "s3cret-auth-key"
    shown = repr(inv) + str(inv) + inv.model_dump_json()
    assert "s3cret" not in shown
    from netmon.inventory import Device
    from probes.snmp import snmp_settings

    dev = Device.model_validate({"name": "sw", "role": "switch", "address": "127.1.1.1",
                                 "snmp": {"credentials": "v3"}})  # fmt: skip
    settings = snmp_settings(inv, dev)
    assert settings.auth_key == "s3cret-auth-key" and "s3cret" not in repr(settings)
    assert (settings.max_walks, settings.max_poll_time, settings.version) == (4, 20.0, "3")


def test_rollout_report_and_commissioned_dates() -> None:
    inv = load_inventory(INVENTORIES / "valid-rollout.yaml")
    assert inv.rollout is not None
    assert (inv.rollout.start, inv.rollout.deadline) == (date(2026, 11, 10), date(2026, 11, 20))
    assert inv.report.day_threshold == 0.9
    assert [s.commissioned for s in inv.sites] == [date(2026, 11, 1), None, date(2026, 11, 11)]
    plain = load_inventory(INVENTORIES / "valid-small.yaml")
    assert plain.rollout is None and plain.report.day_threshold == 0.95

"""The ``netmon`` command's exit status and messages, run as a subprocess (as systemd runs it).

78 (EX_CONFIG) and ``file:line: field: message`` lines for a configuration error, from ``run``
and ``check-config`` alike; 1 and one ``netmon: ...`` line for any other netmon error; never a
traceback for what a user can type.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from netmon import cli, config
from netmon.config import EX_CONFIG, validate
from netmon.errors import ConfigError
from netmon.inventory import Inventory
from netmon.poller_link import LocalPoller
from netmon.settings import Settings
from probes.base import Engines
from probes.snmp import SnmpPoller
from probes.snmp_profiles import DEFAULT_DIR

SITE = """
sites:
  - id: dh-ranchi
    name: Sadar Hospital, Ranchi
    district: Ranchi
    type: district_hospital
    devices:
      - {name: wan-1, role: wan, address: 127.1.0.1}
"""
SNMP_SITE = """
snmp:
  credentials:
    ro: {version: 2c, community: not-a-secret}
sites:
  - id: dh-ranchi
    name: Sadar Hospital, Ranchi
    district: Ranchi
    type: district_hospital
    devices:
      - {name: sw-1, role: switch, address: 127.1.0.3, snmp: {credentials: ro, profile: vendor-x}}
"""
SHORT_KEY = """sites: []
snmp:
  credentials:
    wlc: {version: 3, user: netmon, auth_key: short, priv_key: some-priv-passphrase}
"""


def netmon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    return subprocess.run([sys.executable, "-m", "netmon.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**environment, **(env or {})})  # fmt: skip


def run_args(tmp_path: Path, *args: str) -> list[str]:
    """``run`` on a database in ``tmp_path`` and a port nothing listens on (it never gets there)."""
    return ["run", "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}", "--port", "1", *args]


def test_a_short_snmpv3_key_exits_78_from_run_and_check_config_with_the_same_lines(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHORT_KEY)
    ran = netmon(*run_args(tmp_path, "--config", str(bad)))
    checked = netmon("check-config", str(bad))
    line = f"{bad}:4: snmp.credentials.wlc.auth_key: must be at least 8 characters (RFC 3414)\n"
    assert (ran.returncode, ran.stderr) == (EX_CONFIG, line)
    assert (checked.returncode, checked.stderr, checked.stdout) == (EX_CONFIG, line, "")
    assert not (tmp_path / "db.sqlite").exists()  # refused before anything was opened


def test_check_config_reports_every_file_and_defaults_to_what_run_uses(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(SITE)
    bad.write_text(SITE.replace("district_hospital", "clinic"))
    both = netmon("check-config", str(bad), str(good))
    assert both.returncode == EX_CONFIG
    assert both.stdout == f"{good}: OK (1 sites, 1 devices)\n"
    assert both.stderr.startswith(f"{bad}:6: sites[0].type: Input should be 'medical_college'")
    from_env = netmon("check-config", env={"NETMON_CONFIG": str(good)})
    assert (from_env.returncode, from_env.stdout) == (0, f"{good}: OK (1 sites, 1 devices)\n")


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_a_bad_environment_setting_exits_78_without_a_traceback(
    command: str, tmp_path: Path
) -> None:
    proc = netmon(command, env={"NETMON_PORT": "eighty"})
    assert proc.returncode == EX_CONFIG
    assert proc.stderr.strip() and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) <= 3  # a problem per line, not a dump


def test_a_missing_inventory_exits_78(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    proc = netmon(*run_args(tmp_path, "--config", str(missing)))
    assert proc.returncode == EX_CONFIG
    assert proc.stderr.startswith(f"{missing}: cannot read: ") and "Traceback" not in proc.stderr


def test_any_other_netmon_error_exits_1_with_one_line(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SITE)
    proc = netmon(
        "run", "--config", str(good), "--database-url", "sqlite:////proc/netmon-test/db.sqlite"
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("netmon: cannot create the database folder /proc/netmon-test")
    assert len(proc.stderr.splitlines()) == 1


# -- SNMP profiles in the validation path ------------------------------------------------------


def test_an_inventory_without_snmp_never_reads_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "good.yaml").write_text(SITE)
    (tmp_path / "snmp.yaml").write_text(SNMP_SITE.replace("vendor-x", "generic"))
    empty = tmp_path / "no-profiles"
    empty.mkdir()
    monkeypatch.setattr(config, "DEFAULT_DIR", empty)  # as if the bundled profiles were missing
    assert (
        validate(Settings.from_env({"NETMON_CONFIG": str(tmp_path / "good.yaml")})).snmp_profiles
        == {}
    )
    with pytest.raises(ConfigError) as info:
        validate(Settings.from_env({"NETMON_CONFIG": str(tmp_path / "snmp.yaml")}))
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'snmp.yaml'}:11: sites[0].devices[0].snmp.profile: no SNMP profile 'generic' (known: none found)",
        f"{empty}: no *.yaml SNMP profiles found",
    ]


def write_vendor_profile(folder: Path, oid: str = "1.3.6.1.4.1.99.1.0") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "vendor-x.yaml"
    path.write_text(
        f"name: vendor-x\nextends: generic\nscalars:\n  aps_joined: {{oid: {oid}, type: gauge}}\n"
    )
    return path


def test_a_sites_own_profiles_come_from_snmp_profiles_dir_or_env(tmp_path: Path) -> None:
    inventory = tmp_path / "snmp.yaml"
    inventory.write_text(SNMP_SITE)
    folder = write_vendor_profile(tmp_path / "profiles").parent
    without = netmon("check-config", str(inventory))
    assert without.returncode == EX_CONFIG
    assert (
        f"{inventory}:11: sites[0].devices[0].snmp.profile: no SNMP profile 'vendor-x' (known: "
        in without.stderr
    )
    flag = netmon("check-config", "--snmp-profiles", str(folder), str(inventory))
    env = netmon("check-config", str(inventory), env={"NETMON_SNMP_PROFILES": str(folder)})
    assert (flag.returncode, flag.stderr, env.returncode) == (0, "", 0)
    profiles = validate(
        Settings.from_env({"NETMON_CONFIG": str(inventory)}).with_overrides(snmp_profiles=folder)
    ).snmp_profiles
    assert (
        set(profiles) >= {"generic", "cisco-wlc", "vendor-x"}
        and "sys_uptime" in profiles["vendor-x"].scalars
    )


def test_a_broken_site_profile_is_rejected_by_run_and_check_config_with_its_line(
    tmp_path: Path,
) -> None:
    inventory = tmp_path / "snmp.yaml"
    inventory.write_text(SNMP_SITE)
    profile = write_vendor_profile(tmp_path / "profiles", oid="sysUpTime.0")
    line = f"{profile}:4: scalars.aps_joined.oid: not a numeric OID: 'sysUpTime.0' (e.g. 1.3.6.1.2.1.1.3.0)\n"
    checked = netmon("check-config", "--snmp-profiles", str(profile.parent), str(inventory))
    ran = netmon(
        *run_args(tmp_path, "--config", str(inventory), "--snmp-profiles", str(profile.parent))
    )
    assert (checked.returncode, checked.stderr) == (EX_CONFIG, line)
    assert (ran.returncode, ran.stderr) == (EX_CONFIG, line)


def test_a_profiles_dir_that_does_not_exist_is_an_error_even_without_snmp(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SITE)
    proc = netmon("check-config", "--snmp-profiles", str(tmp_path / "nope"), str(good))
    assert (proc.returncode, proc.stderr) == (EX_CONFIG, f"{tmp_path / 'nope'}: not a directory\n")


def test_the_bundled_profiles_are_the_default_dir() -> None:
    assert (Path(DEFAULT_DIR) / "generic.yaml").is_file()


# -- SIGHUP reload ---------------------------------------------------------------------------


class _Monitor:
    """Stands in for the Monitor behind its reload seam (the validation is the real one)."""

    ready = True

    def __init__(self, engines: Engines) -> None:
        self.inventories: list[Inventory] = []
        self.poller = LocalPoller(lambda *_: None, engines)
        self.last_reload = (True, 0.0)
        self.announced = Inventory()  # the reload compares its api settings with the new one's

    async def reload(self, inventory: Inventory, config: config.ValidatedConfig) -> None:
        self.inventories.append(inventory)
        self.announced = inventory
        await self.poller.assign(inventory, config)


async def test_reload_validates_off_the_loop_and_keeps_the_old_inventory_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(SHORT_KEY)
    threads: list[str] = []

    def validating(settings: Settings) -> config.ValidatedConfig:
        threads.append(threading.current_thread().name)
        return validate(settings)

    monkeypatch.setattr(cli, "validate", validating)
    poller = SnmpPoller({})
    monitor = _Monitor(Engines({"snmp": poller}))  # the real poller behind the kinds' engines
    reloader = cli._Reloader(monitor, Settings.from_env({"NETMON_CONFIG": str(path)}))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="netmon"):
        assert await reloader.reload() is None
    assert monitor.inventories == []
    assert f"{path}:4: snmp.credentials.wlc.auth_key: must be at least 8 characters" in caplog.text
    path.write_text(SNMP_SITE.replace("vendor-x", "cisco-wlc"))
    reloaded = await reloader.reload()
    assert reloaded is not None and monitor.inventories == [reloaded.inventory]
    assert "cisco-wlc" in poller.profiles
    assert threads and threading.main_thread().name not in threads


async def test_a_reload_whose_jobs_cannot_be_built_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """All or nothing: every probe job is built before the swap; a kind's job() failing (what
    validation let through) refuses the reload, keeps the running inventory, and says so."""
    from probes import KINDS

    path = tmp_path / "inventory.yaml"
    path.write_text(SNMP_SITE.replace("vendor-x", "cisco-wlc"))
    monitor = _Monitor(Engines({"snmp": SnmpPoller({})}))
    reloader = cli._Reloader(monitor, Settings.from_env({"NETMON_CONFIG": str(path)}))  # type: ignore[arg-type]

    def refuse(*_args: object) -> None:
        raise ValueError("key derivation failed")

    monkeypatch.setattr(KINDS["snmp"], "job", refuse)
    with caplog.at_level(logging.ERROR, logger="netmon"):
        assert await reloader.reload() is None
    assert monitor.inventories == [] and monitor.last_reload[0] is False
    assert "cannot build probe jobs: key derivation failed" in caplog.text
    monkeypatch.undo()
    assert await reloader.reload() is not None
    assert monitor.last_reload[0] is True and len(monitor.inventories) == 1

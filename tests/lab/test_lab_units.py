"""Lab parts that need neither root nor a namespace: schema, plan, responder logic, SNMP helper."""

from __future__ import annotations

import argparse
import http.server
import io
import json
import re
import shutil
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from netmon.inventory import parse_inventory
from netmon.lab import cli as lab_cli
from netmon.lab.control import parse_assignments, wire_faults
from netmon.lab.demo import (
    DEMO_SITES,
    DEMO_TIMING,
    add_hindi_names,
    board_banner,
    browser_command,
    demo_scenarios,
    open_board,
)
from netmon.lab.events import IDLE_WAIT, EventRunner, Scheduled, schedule
from netmon.lab.expect import problems
from netmon.lab.measure import parse_vcount
from netmon.lab.model import (
    Faults,
    LabError,
    bundled_scenario_dir,
    bundled_scenarios,
    parse_scenario,
)
from netmon.lab.passpersist import IF_ENTRY, SYS_UPTIME, Agent, mib, serve
from netmon.lab.plan import LabTiming, Plan, temporary_env
from netmon.lab.responder import LossPattern, build_devices, check_faults, make_reply
from netmon.lab.runner import free_port
from netmon.lab.snmp import SUBTREES, SnmpAgent
from netmon.verdict import Criterion
from probes.icmp_socket import checksum as icmp_checksum
from probes.snmp_profiles import load_profiles
from tests.lab.conftest import recording_browser, wait_until

MINIMAL = """
id: t
description: test
site:
  id: lab-t
  name: CHC Test
  district: Gumla
  type: chc
  devices:
    - {name: wan-1, role: wan}
    - {name: ap-01, role: ap, parent: wan-1}
"""


def _with(text: str, **site_device_0: Any) -> str:
    data = yaml.safe_load(text)
    data["site"]["devices"][0].update(site_device_0)
    return yaml.safe_dump(data)


# --- scenario schema -------------------------------------------------------------------------


def test_every_scenario_file_is_valid_and_has_expectations() -> None:
    scenarios = bundled_scenarios()
    ids = {sc.id for sc in scenarios}
    assert {"healthy", "uplink-down", "aps-down", "lossy-uplink", "slow-uplink", "flapping-ap", "flapping-ap-small-site",
            "controller-down", "never-seen", "recovering", "rebooted-router", "uplink-port-down",
            "snmp-silent", "snmp-v3"} <= ids  # fmt: skip
    assert all(sc.expect is not None for sc in scenarios)


@pytest.mark.parametrize("address", ["10.0.0.1", "192.0.2.7", "127.0.0.1", "198.20.0.1", "8.8.8.8"])
def test_addresses_outside_the_lab_range_are_refused(address: str) -> None:
    with pytest.raises(LabError, match="outside the lab range"):
        parse_scenario(_with(MINIMAL, address=address))


def test_the_link_block_and_odd_hosts_are_refused() -> None:
    with pytest.raises(LabError, match="reserved for the lab's own link"):
        parse_scenario(_with(MINIMAL, address="198.18.0.9"))
    with pytest.raises(LabError, match=r"\.0/\.255"):
        parse_scenario(_with(MINIMAL, address="198.19.4.255"))


def test_unknown_keys_and_bad_values_are_errors_with_a_location() -> None:
    with pytest.raises(LabError, match=r"site\.devices\[0\]\.colour"):
        parse_scenario(_with(MINIMAL, colour="red"))
    with pytest.raises(LabError, match=r"faults\.loss"):
        parse_scenario(_with(MINIMAL, faults={"loss": 1.5}))
    with pytest.raises(LabError, match="down_for must be shorter"):
        parse_scenario(_with(MINIMAL, faults={"flap": {"period": "1m", "down_for": "2m"}}))
    with pytest.raises(LabError, match="unknown devices"):
        parse_scenario(MINIMAL + "expect: {verdict: down, device_states: {nope: up}}\n")


def test_expectations_may_only_name_criteria_netmon_emits() -> None:
    for bad in ("{criterion: ap_availability}", "{criterion: [ap_flapping, ap_outage]}"):
        with pytest.raises(
            LabError,
            match=r"expect\.reasons\[0\]\.criterion.*'ap_(availability|outage)' is not a verdict criterion",
        ):
            parse_scenario(MINIMAL + f"expect: {{verdict: degraded, reasons: [{bad}]}}\n")
    with pytest.raises(LabError, match=r"expect\.forbidden_reasons\[0\]: .*'uplink_dwon' is not"):
        parse_scenario(MINIMAL + "expect: {verdict: degraded, forbidden_reasons: [uplink_dwon]}\n")
    sc = parse_scenario(
        MINIMAL + "expect: {verdict: degraded, reasons: [{criterion: ap_flapping}]}\n"
    )
    assert sc.expect is not None and sc.expect.reasons[0].criteria == (Criterion.AP_FLAPPING,)


def test_scenarios_are_package_data_of_the_lab() -> None:
    """The lab reads its scenarios through importlib.resources, not from tests/."""
    where = bundled_scenario_dir()
    names = sorted(f.name for f in where.iterdir() if f.name.endswith(".yaml"))
    assert [sc.id + ".yaml" for sc in bundled_scenarios()] == names
    assert "netmon/lab/scenarios" in str(where).replace("\\", "/")
    assert where.joinpath("README.md").is_file()
    assert not (Path(__file__).parent / "scenarios").exists()


def test_the_readme_table_lists_every_bundled_scenario() -> None:
    readme = bundled_scenario_dir().joinpath("README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| ([a-z0-9-]+) \|", readme, re.MULTILINE))
    assert rows - {"scenario"} == {sc.id for sc in bundled_scenarios()}


def test_durations_accept_units_and_bare_seconds() -> None:
    sc = parse_scenario(_with(MINIMAL, faults={"delay": "250ms", "jitter": 0.01,
                                               "down_periods": [{"start": "1m", "end": "90"}]}))  # fmt: skip
    f = sc.site.devices[0].faults
    assert (f.delay, f.jitter, f.down_periods[0].start, f.down_periods[0].end) == (
        0.25,
        0.01,
        60,
        90,
    )


# --- plan and inventory ----------------------------------------------------------------------


def _inventory(plan: Plan, secrets_dir: Path, snmp: bool = True) -> Any:
    """netmon's view of the plan's inventory (secret files written, env set while parsing)."""
    plan.write_secrets(secrets_dir)
    with temporary_env(plan.netmon_env()):
        return parse_inventory(plan.inventory_yaml("netmon-lab-test", secrets_dir, snmp))


def test_plan_gives_each_site_its_own_block_and_a_valid_inventory(tmp_path: Path) -> None:
    plan = Plan.build(bundled_scenarios())
    blocks = {d.site: d.address.rsplit(".", 1)[0] for d in plan.devices.values()}
    assert len(set(blocks.values())) == len(blocks)
    inv = _inventory(plan, tmp_path)
    eff = inv.defaults
    assert (eff.count - 1) * eff.spacing + eff.timeout < eff.interval
    assert inv.policy.window == 60
    assert sum(len(s.devices) for s in inv.sites) == len(plan.devices)


def test_timing_must_fit_the_interval() -> None:
    with pytest.raises(LabError, match="not less than"):
        LabTiming(interval=1.0, count=5, spacing=0.2, timeout=0.5)


def test_explicit_addresses_are_kept_and_time_scale_scales_schedules() -> None:
    text = _with(MINIMAL, address="198.19.7.7", faults={"flap": {"period": "3m", "down_for": "1m"}})
    sc = parse_scenario(text.replace("description: test", "description: test\ntime_scale: 0.1"))
    plan = Plan.build([sc])
    assert plan.devices["lab-t/wan-1"].address == "198.19.7.7"
    wan = plan.responder_config(1)["devices"][0]
    assert wan["flap"] == pytest.approx([18.0, 6.0, 0.0])


def test_demo_uses_real_jharkhand_sites_with_a_realistic_mix(tmp_path: Path) -> None:
    scenarios = demo_scenarios()
    assert 10 <= len(scenarios) <= 20
    conditions = [DEMO_SITES[sc.site.id] for sc in scenarios]
    assert conditions.count("healthy") > len(conditions) / 2
    assert {"uplink_down", "lossy_uplink", "never_seen"} <= set(conditions)
    inv = _inventory(Plan.build(scenarios, DEMO_TIMING), tmp_path)
    polled = [d for s in inv.sites for d in s.devices if d.snmp]
    assert polled and inv.snmp.defaults.interval == DEMO_TIMING.snmp_interval


def test_demo_devices_the_readme_names_can_be_rebooted_and_lose_their_uplink_port() -> None:
    """README: `netmon lab reboot dh-ranchi/router-1`, `lab set dh-ranchi/wan-1 if1=down`."""
    site = next(sc.site for sc in demo_scenarios() if sc.site.id == "dh-ranchi")
    agents = {d.name: d.snmp for d in site.devices if d.snmp is not None}
    assert {"wan-1", "router-1"} <= set(agents)
    for agent in agents.values():
        if1 = next(i for i in agent.interfaces if i.index == 1)
        assert agent.uplink_interfaces == [if1.name]  # if1=down is an uplink down


def test_demo_falls_back_when_not_root_and_still_opens_the_board(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without root the demo runs netmon on the loopback example (here a stand-in answering
    /healthz on the port) and, once it answers, prints the board's URL and opens it."""
    calls: list[list[str]] = []
    browser, seen = recording_browser(tmp_path)
    port = free_port()

    class Healthz(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    def fake_main(argv: list[str]) -> int:
        calls.append(argv)
        with http.server.ThreadingHTTPServer(("127.0.0.1", port), Healthz) as srv:
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            wait_until(lambda: seen.exists() and seen.read_text() != "", 20)
            srv.shutdown()
        return 0

    monkeypatch.setattr("netmon.lab.lab.os.geteuid", lambda: 1000)
    monkeypatch.setattr("netmon.cli.main", fake_main)
    monkeypatch.setenv("BROWSER", browser)
    args = argparse.Namespace(host="127.0.0.1", port=port, workdir=None, duration=1.0)
    assert lab_cli.cmd_demo(args) == 0
    assert calls == [["run", "--host", "127.0.0.1", "--port", str(port)]]
    out = capsys.readouterr()
    assert "needs root" in out.err
    assert seen.read_text() == f"http://127.0.0.1:{port}/status"
    assert f"The status board:  http://127.0.0.1:{port}/status" in out.out
    assert "opened in a browser" in out.out


def test_the_board_opens_only_where_a_browser_is(tmp_path: Path) -> None:
    browser, seen = recording_browser(tmp_path)
    assert browser_command({}, 1000) is None  # no $BROWSER, no display
    assert browser_command({"BROWSER": "/nonexistent/browser"}, 1000) is None
    assert browser_command({"BROWSER": f"{browser}:firefox"}, 1000) == [browser]
    as_user = browser_command({"BROWSER": browser, "SUDO_USER": "asha"}, 0)
    assert as_user is not None and as_user[-1] == browser
    assert as_user[:4] == (
        ["runuser", "-u", "asha", "--"] if shutil.which("runuser") else [browser]
    )
    said = open_board("http://127.0.0.1:8000/status", {}, 1000)
    assert "no browser found here" in said
    said = open_board("http://127.0.0.1:8000/status", {"BROWSER": browser}, 1000)
    assert said.startswith("opened in a browser")
    assert wait_until(lambda: seen.exists() and seen.read_text() != "", 10)
    assert seen.read_text() == "http://127.0.0.1:8000/status"
    banner = board_banner("http://127.0.0.1:8000").splitlines()
    assert banner[1].split() == ["The", "status", "board:", "http://127.0.0.1:8000/status"]


def test_demo_inventory_gets_the_examples_hindi_names(tmp_path: Path) -> None:
    plan = Plan.build(demo_scenarios(), DEMO_TIMING)
    path = tmp_path / "inventory.yaml"
    path.write_text(plan.inventory_yaml("netmon-lab-test", tmp_path, snmp=False))
    assert parse_inventory(path.read_text()).state_hi is None
    add_hindi_names(path)
    dressed = parse_inventory(path.read_text())
    assert dressed.state_hi == "झारखंड" and dressed.districts["Ranchi"].name_hi == "रांची"
    assert set(dressed.districts) == {s.district for s in dressed.sites}
    ranchi = dressed.site("dh-ranchi")
    assert ranchi is not None and ranchi.name_hi == "सदर अस्पताल, रांची"


SNMP_SITE = """
id: s
description: SNMP test
site:
  id: lab-s
  name: CHC SNMP
  district: Gumla
  type: chc
  devices:
    - name: wan-1
      role: wan
      snmp:
        interfaces: [{index: 1, name: pon0}, {index: 2, name: lte0}]
        uplink_interfaces: [pon0]
    - {name: router-1, role: router, parent: wan-1, snmp: {poll: v3, v3_user: noc}}
    - {name: sw-01, role: switch, parent: router-1, snmp: {poll: v3, v3_user: noc}}
    - {name: sw-02, role: switch, parent: router-1, snmp: {community: own-community}}
    - {name: ap-01, role: ap, parent: sw-01}
"""


def test_snmp_settings_and_events_are_checked_with_a_location() -> None:
    with pytest.raises(
        LabError, match=r"site\.devices\[0\]\.snmp.*uplink_interfaces names no interface"
    ):
        parse_scenario(_with(MINIMAL, snmp={"uplink_interfaces": ["eth9"]}))
    with pytest.raises(LabError, match="interface names must be unique"):
        parse_scenario(_with(MINIMAL, snmp={"interfaces": [{"index": 1, "name": "a"},
                                                           {"index": 2, "name": "a"}]}))  # fmt: skip
    with pytest.raises(LabError, match=r"snmp\.poll"):
        parse_scenario(_with(MINIMAL, snmp={"poll": "v1"}))
    with pytest.raises(LabError, match=r"snmp\.v3_auth_key"):
        parse_scenario(_with(MINIMAL, snmp={"v3_auth_key": "short"}))
    snmp = _with(MINIMAL, snmp={})
    for events, message in [
        ([{"after": "5s", "action": "reboot", "device": "nope"}], "no device named 'nope'"),
        ([{"after": "5s", "action": "reboot", "device": "ap-01"}], "has no snmp agent"),
        ([{"after": "5s", "action": "interface", "device": "wan-1", "interface": "eth9", "oper": "down"}],
         r"no interface 'eth9' \(known: uplink0, lan0\)"),
        ([{"after": "5s", "action": "interface", "device": "wan-1", "interface": "lan0"}],
         "needs oper and/or admin"),
        ([{"after": "5s", "action": "explode", "device": "wan-1"}], r"events\[0\]"),
        ([{"after": "5s", "action": "reboot", "device": "wan-1", "colour": 1}], r"events\[0\]\.reboot\.colour"),
        ([{"after": "-1s", "action": "agent_stop", "device": "wan-1"}], r"events\[0\]"),
    ]:  # fmt: skip
        with pytest.raises(LabError, match=message):
            parse_scenario(snmp + yaml.safe_dump({"events": events}))
    with pytest.raises(LabError, match="snmp_answered names devices without snmp: ap-01"):
        parse_scenario(snmp + "expect: {verdict: degraded, snmp_answered: {ap-01: true}}\n")


def test_events_are_scaled_and_scheduled_in_time_order() -> None:
    text = _with(MINIMAL, snmp={}).replace(
        "description: test", "description: test\ntime_scale: 0.1"
    )
    sc = parse_scenario(text + yaml.safe_dump({"events": [
        {"after": "2m", "action": "agent_start", "device": "wan-1"},
        {"after": "1m", "action": "agent_stop", "device": "wan-1"},
        {"after": 30, "action": "interface", "device": "wan-1", "interface": "lan0", "admin": "down"},
    ]}))  # fmt: skip
    items = schedule([sc])
    assert [(i.at, i.key, i.event.action) for i in items] == [
        (3.0, "lab-t/wan-1", "interface"), (6.0, "lab-t/wan-1", "agent_stop"),
        (12.0, "lab-t/wan-1", "agent_start")]  # fmt: skip
    assert items[0].describe() == "lab-t/wan-1: interface lan0 admin=down"


def test_plan_names_shared_credentials_and_keeps_v3_keys_out_of_the_inventory(
    tmp_path: Path,
) -> None:
    plan = Plan.build([parse_scenario(SNMP_SITE)])
    creds = plan.credentials()
    assert {k: c.name for k, c in creds.items()} == {
        "lab-s/wan-1": "lab-v2c-1", "lab-s/router-1": "lab-v3-1", "lab-s/sw-01": "lab-v3-1",
        "lab-s/sw-02": "lab-v2c-2"}  # fmt: skip
    assert creds["lab-s/sw-02"].community == "own-community"
    secrets = plan.secrets()
    assert "own-community" in secrets and len(secrets) == 4  # + random community, auth, priv
    leaky = [
        c
        for c in creds.values()
        for x in (c.community, c.auth_key, c.priv_key)
        if x and x in repr(c)
    ]
    assert not leaky
    plan.write_secrets(tmp_path)
    text = plan.inventory_yaml("ns", tmp_path)
    v3 = creds["lab-s/router-1"]
    assert v3.auth_key not in text and v3.priv_key not in text
    assert f"file: {tmp_path / 'lab-v3-1.auth'}" in text and "env: NETMON_LAB_V3_1_PRIV_KEY" in text


def test_plan_refuses_an_inventory_whose_secrets_are_missing(tmp_path: Path) -> None:
    plan = Plan.build([parse_scenario(SNMP_SITE)])
    with pytest.raises(LabError, match="cannot read secret file"):
        plan.inventory_yaml("ns", tmp_path / "never-written")


def test_inventory_polls_every_agent_with_its_credential(tmp_path: Path) -> None:
    plan = Plan.build([parse_scenario(SNMP_SITE)])
    secrets_dir = tmp_path / "secrets"
    inv = _inventory(plan, secrets_dir)
    wan, router, sw1, sw2, ap = inv.sites[0].devices
    assert wan.snmp is not None and wan.snmp.uplink_interfaces == ["pon0"]
    assert (wan.snmp.credentials, wan.snmp.profile) == ("lab-v2c-1", "generic")
    assert router.snmp is not None and sw1.snmp is not None and sw2.snmp is not None
    assert router.snmp.credentials == sw1.snmp.credentials == "lab-v3-1"
    assert ap.snmp is None and ap.kinds == ["icmp"] and wan.kinds == ["icmp", "snmp"]
    v3 = inv.snmp.credentials["lab-v3-1"]
    dev = plan.devices["lab-s/router-1"].snmp
    assert dev is not None and v3.user == "noc" and v3.version == "3"
    assert v3.auth_key is not None and v3.auth_key.get_secret_value() == dev.v3_auth_key
    assert v3.priv_key is not None and v3.priv_key.get_secret_value() == dev.v3_priv_key
    assert (secrets_dir / "lab-v3-1.auth").stat().st_mode & 0o077 == 0
    assert plan.netmon_env() == {"NETMON_LAB_V3_1_PRIV_KEY": dev.v3_priv_key}
    d = inv.snmp.defaults
    assert (d.interval, d.timeout, d.retries, d.max_poll_time) == (2.0, 1.0, 0, 1.5)
    assert not _inventory(plan, secrets_dir, snmp=False).snmp.credentials


def test_default_secrets_are_random_per_plan_and_shared_within_it() -> None:
    sc = parse_scenario(SNMP_SITE)
    a, b = Plan.build([sc]), Plan.build([sc])
    wan_a, wan_b = a.devices["lab-s/wan-1"].snmp, b.devices["lab-s/wan-1"].snmp
    router_a = a.devices["lab-s/router-1"].snmp
    assert wan_a and wan_b and router_a and wan_a.community and wan_a.v3_priv_key
    assert wan_a.community != wan_b.community and wan_a.v3_priv_key != wan_b.v3_priv_key
    assert router_a.v3_priv_key == wan_a.v3_priv_key and len(wan_a.community) >= 16


def test_snmp_timing_must_fit_its_interval() -> None:
    with pytest.raises(LabError, match="SNMP timing"):
        LabTiming(snmp_interval=2.0, snmp_max_poll_time=2.0)
    with pytest.raises(LabError, match="SNMP timing"):
        LabTiming(snmp_timeout=2.0, snmp_max_poll_time=1.5)


def test_the_lab_agent_serves_every_if_mib_object_of_the_generic_profile() -> None:
    """Each scalar/column of netmon's generic profile under the helper's subtrees has rows."""
    generic = load_profiles()["generic"]
    rows = mib(_state(), now=1100.0)
    served = [tuple(int(x) for x in t.strip(".").split(".")) for t in SUBTREES]
    oids = [c.oid for c in generic.scalars.values()]
    oids += [c.oid for t in generic.tables.values() for c in t.columns.values()]
    ours = [tuple(int(x) for x in o.split(".")) for o in oids]
    ours = [o for o in ours if any(o[: len(t)] == t for t in served)]
    missing = [o for o in ours if not any(r[: len(o)] == o for r in rows)]
    assert len(ours) >= 10 and not missing, missing  # sysUpTime + 9 interface columns
    assert rows[IF_ENTRY + (20, 1)] == ("counter", "0")  # ifOutErrors


def test_agent_interfaces_can_be_named_by_ifname(tmp_path: Path) -> None:
    plan = Plan.build([parse_scenario(SNMP_SITE)])
    dev = plan.devices["lab-s/wan-1"]
    assert dev.snmp is not None
    agent = SnmpAgent(dev.key, dev.address, dev.snmp, tmp_path)
    agent.write_files()
    agent.set_interface("pon0", oper="down")
    agent.set_interface(2, admin="down")
    state = {i["name"]: (i["oper"], i["admin"]) for i in agent.read_state()["interfaces"]}
    assert state == {"pon0": (2, 1), "lte0": (1, 2)}
    with pytest.raises(LabError, match="no interface with ifName eth9"):
        agent.set_interface("eth9", oper="down")
    config = agent.config_path.read_text()
    assert dev.snmp.community and f"rocommunity {dev.snmp.community} default" in config
    assert agent.config_path.stat().st_mode & 0o077 == 0


# --- run-time events -------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _runner(clock: _Clock, fail: str = "") -> tuple[EventRunner, list[str], list[str]]:
    sc = parse_scenario(_with(MINIMAL, snmp={}) + yaml.safe_dump({"events": [
        {"after": "10s", "action": "reboot", "device": "wan-1"},
        {"after": "4s", "action": "agent_stop", "device": "wan-1"},
    ]}))  # fmt: skip
    applied: list[str] = []
    logged: list[str] = []

    def apply(item: Scheduled) -> None:
        if item.event.action == fail:
            raise LabError("agent went missing")
        applied.append(item.event.action)

    return EventRunner(schedule([sc]), apply, logged.append, clock=clock), applied, logged


def test_events_fire_once_when_due_and_again_after_a_reset() -> None:
    clock = _Clock()
    runner, applied, _ = _runner(clock)
    assert runner.wait_time(clock()) == min(IDLE_WAIT, 4.0)
    clock.now += 3.9
    assert runner.run_due(clock()) == [] and applied == []
    clock.now += 0.2
    assert [f.item.event.action for f in runner.run_due(clock())] == ["agent_stop"]
    assert runner.wait_time(clock()) == pytest.approx(min(IDLE_WAIT, 5.9))
    clock.now += 100
    assert [f.item.event.action for f in runner.run_due(clock())] == ["reboot"]
    assert runner.run_due(clock()) == [] and runner.wait_time(clock()) == IDLE_WAIT
    runner.reset()
    assert runner.fired(this_epoch=True) == [] and len(runner.fired()) == 2
    clock.now += 10
    runner.run_due(clock())
    assert applied == ["agent_stop", "reboot", "agent_stop", "reboot"]
    assert [f.epoch for f in runner.fired()] == [0, 0, 1, 1]
    assert [f.offset for f in runner.fired(this_epoch=True)] == [10.0, 10.0]


def test_a_failing_event_is_recorded_not_raised() -> None:
    clock = _Clock()
    runner, applied, logged = _runner(clock, fail="agent_stop")
    clock.now += 20
    fired = runner.run_due(clock())
    assert applied == ["reboot"]
    assert [(f.item.event.action, f.error) for f in fired] == [
        ("agent_stop", "LabError: agent went missing"), ("reboot", None)]  # fmt: skip
    assert "lab-t/wan-1: agent_stop FAILED: LabError: agent went missing" in logged[0]


def test_the_event_thread_applies_due_events_and_stops_promptly() -> None:
    sc = parse_scenario(_with(MINIMAL, snmp={}) + yaml.safe_dump({"events": [
        {"after": "50ms", "action": "reboot", "device": "wan-1"},
        {"after": "1h", "action": "agent_stop", "device": "wan-1"},
    ]}))  # fmt: skip
    done = threading.Event()
    runner = EventRunner(schedule([sc]), lambda _item: done.set())
    runner.start()
    try:
        assert done.wait(10.0), "the due event was not applied"
    finally:
        runner.stop(timeout=10.0)
    assert runner._thread is None and [f.item.event.action for f in runner.fired()] == ["reboot"]


# --- responder logic -------------------------------------------------------------------------


def test_loss_is_exact_per_thousand_and_seeded() -> None:
    def drops(loss: float, seed: int, n: int = 1000) -> list[int]:
        pattern = LossPattern(loss, seed)
        return [i for i in range(n) if pattern.drop()]

    assert len(drops(0.03, 7)) == 30
    assert drops(0.03, 7) == drops(0.03, 7)
    assert drops(0.03, 7) != drops(0.03, 8)
    assert len(drops(0.97, 7)) == 970
    assert len(drops(0.5, 7)) == 500
    assert drops(0.0, 7) == [] and len(drops(1.0, 7)) == 1000
    gaps = [b - a for a, b in zip(drops(0.03, 7), drops(0.03, 7)[1:], strict=False)]
    assert max(gaps) < 2 * 34  # stratified: never a long run without the configured loss


def _echo(
    src: str, dst: str, ident: int = 0x1234, seq: int = 7, payload: bytes = b"x" * 56
) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", icmp_checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))  # fmt: skip
    return ip + icmp


@pytest.mark.parametrize("payload", [b"", b"a", b"x" * 56, bytes(range(256)) * 4])
def test_reply_swaps_addresses_and_has_a_valid_checksum(payload: bytes) -> None:
    built = make_reply(_echo("198.18.0.1", "198.18.3.4", payload=payload))
    assert built is not None
    packet, requester, device = built
    assert (socket.inet_ntoa(requester), socket.inet_ntoa(device)) == ("198.18.0.1", "198.18.3.4")
    assert packet[12:16] == device and packet[16:20] == requester
    icmp = packet[20:]
    assert icmp[0] == 0 and icmp[4:8] == struct.pack("!HH", 0x1234, 7) and icmp[8:] == payload
    assert icmp_checksum(icmp) == 0


def test_non_echo_packets_get_no_reply() -> None:
    reply = _echo("198.18.0.1", "198.18.3.4")
    reply = reply[:20] + b"\x00" + reply[21:]
    assert make_reply(reply) is None
    assert make_reply(_echo("198.18.0.1", "198.18.3.4")[:24]) is None


def _devices(**wan: Any) -> dict[str, Any]:
    return build_devices({"seed": 1, "devices": [
        {"name": "s/wan", "address": "198.18.1.1", **wan},
        {"name": "s/sw", "address": "198.18.1.2", "parent": "s/wan", "loss": 0.1},
        {"name": "s/ap", "address": "198.18.1.3", "parent": "s/sw"},
    ]})  # fmt: skip


def test_down_silences_everything_behind_it() -> None:
    devs = _devices(periods=[[10.0, 20.0]])
    assert not devs["s/ap"].silent(5.0, 0.0)
    assert devs["s/ap"].silent(15.0, 0.0) and devs["s/sw"].silent(15.0, 0.0)
    assert not devs["s/ap"].silent(25.0, 0.0)


def test_flap_is_up_first_then_down_for_the_last_part_of_each_period() -> None:
    dev = _devices(flap=[18.0, 6.0, 0.0])["s/wan"]
    assert [dev.own_down(t, 0.0) for t in (0, 11.9, 12.1, 17.9, 18.1, 30.5)] == [
        False, False, True, True, False, True]  # fmt: skip


def test_propagated_loss_and_delay_add_up_along_the_chain() -> None:
    devs = _devices(loss=0.5, delay=0.1, propagate=True)
    assert devs["s/sw"].loss.loss == pytest.approx(1 - 0.5 * 0.9)
    assert devs["s/ap"].delay == pytest.approx(0.1)
    plain = _devices(loss=0.5, delay=0.1)
    assert plain["s/ap"].delay == 0 and plain["s/sw"].loss.loss == pytest.approx(0.1)


def test_control_faults_are_checked() -> None:
    assert check_faults({"loss": 0.2, "down": True}) == {"loss": 0.2, "down": True}
    for bad in (
        {"loss": 2},
        {"down": "yes"},
        {"colour": 1},
        {"flap": [1, 2, 0]},
        {"periods": [[5, 1]]},
    ):
        with pytest.raises(ValueError):
            check_faults(bad)


def test_cli_assignments_become_wire_faults() -> None:
    fields, outage = parse_assignments(["loss=3%", "delay=300ms", "down=false", "flap=18s/6s",
                                        "periods=10s-40s,60s-", "outage=5"])  # fmt: skip
    assert outage == 5.0
    wire = wire_faults(Faults.model_validate(fields), set(fields))
    assert wire == {"loss": 0.03, "delay": 0.3, "down": False, "flap": [18.0, 6.0, 0.0],
                    "periods": [[10.0, 40.0], [60.0, None]]}  # fmt: skip
    with pytest.raises(LabError, match="unknown fault"):
        parse_assignments(["colour=red"])


# --- SNMP pass_persist helper ----------------------------------------------------------------


def _state(boot: float = 1000.0, oper: int = 1) -> dict[str, Any]:
    return {"boot": boot, "interfaces": [
        {"index": 1, "name": "uplink0", "oper": oper, "admin": 1, "last_change": boot, "in_rate": 100},
        {"index": 2, "name": "lan0", "oper": 1, "admin": 1, "last_change": boot + 5}]}  # fmt: skip


def test_mib_uptime_counters_and_status_follow_the_state() -> None:
    rows = mib(_state(oper=2), now=1012.5)
    assert rows[SYS_UPTIME] == ("timeticks", "1250")
    assert rows[IF_ENTRY + (8, 1)] == ("integer", "2")
    assert rows[IF_ENTRY + (10, 1)] == ("counter", "1250")
    assert rows[IF_ENTRY + (9, 2)] == ("timeticks", "500")
    assert mib(_state(boot=1012.0), now=1012.5)[SYS_UPTIME] == ("timeticks", "50")  # rebooted


def test_pass_persist_protocol(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(_state()))
    agent = Agent(str(state), (1, 3, 6, 1, 2, 1, 2))
    stdin = io.StringIO("PING\nget\n.1.3.6.1.2.1.2.2.1.2.2\ngetnext\n.1.3.6.1.2.1.2\n"
                        "get\n.1.3.6.1.2.1.1.3.0\nset\n.1.3.6.1.2.1.2.1.0\ninteger 5\n")  # fmt: skip
    stdout = io.StringIO()
    serve(agent, stdin, stdout)
    assert stdout.getvalue().splitlines() == [
        "PONG", ".1.3.6.1.2.1.2.2.1.2.2", "string", "lan0",
        ".1.3.6.1.2.1.2.1.0", "integer", "2",
        "NONE",  # sysUpTime is outside this helper's subtree
        "not-writable"]  # fmt: skip


# --- expectations and fping parsing ----------------------------------------------------------


def test_expectation_checker() -> None:
    sc = parse_scenario(
        MINIMAL
        + """expect:
  verdict: down
  reasons: [{criterion: uplink_down, device: wan-1, count: 1, message_contains: [behind]}]
  only_listed_reasons: true
  device_states: {ap-01: unreachable_parent}
  history: [{from: fully_functional, to: [down]}]
"""
    )
    assert sc.expect is not None
    reason = {"criterion": "uplink_down", "device": "wan-1", "message": "1 device(s) behind it"}
    site = {"verdict": "down", "reasons": [reason],
            "device_list": [{"name": "ap-01", "state": "unreachable_parent"}]}  # fmt: skip
    history = [{"verdict": "down"}, {"verdict": "fully_functional"}, {"verdict": "unknown"}]
    assert problems(sc.expect, site, history) == []
    site["reasons"] = [reason, {"criterion": "ap_down", "device": "ap-01", "message": ""}]
    assert problems(sc.expect, site, history) == ["unexpected reasons: ap_down[ap-01] "]
    assert "has no fully_functional -> down" in problems(sc.expect, site, history[::-1])[-1]


def test_snmp_answered_expectation() -> None:
    sc = parse_scenario(
        _with(MINIMAL, snmp={}) + "expect: {verdict: degraded, snmp_answered: {wan-1: false}}\n"
    )
    assert sc.expect is not None
    site: dict[str, Any] = {"verdict": "degraded", "reasons": [],
                            "device_list": [{"name": "wan-1", "snmp": {"answered": False}}]}  # fmt: skip
    assert problems(sc.expect, site) == []
    site["device_list"][0]["snmp"]["answered"] = True
    assert problems(sc.expect, site) == ["device wan-1: SNMP answered True, expected False"]
    site["device_list"][0]["snmp"] = None
    assert problems(sc.expect, site) == ["device wan-1: SNMP answered None, expected False"]


def test_fping_vcount_parsing() -> None:
    text = "198.18.5.1 : 15.3 - 14.4 16.0\n198.18.8.1 : - - -\nnoise line\n"
    out = parse_vcount(text, ["198.18.5.1", "198.18.8.1"])
    assert out["198.18.5.1"].sent == 4 and out["198.18.5.1"].received == 3
    assert out["198.18.5.1"].loss_ratio == pytest.approx(0.25)
    assert out["198.18.5.1"].p95 == pytest.approx(0.016)
    assert out["198.18.8.1"].avg is None
    with pytest.raises(LabError):
        parse_vcount(text, ["198.18.9.9"])


def test_a_stop_signal_while_a_helper_starts_is_delivered_right_after() -> None:
    """SIGTERM landing inside Popen (after the fork, before the Popen object exists) would
    orphan the child: the lab defers it to just after the start."""
    import signal

    from netmon.lab import lab as lab_module

    calls: list[int] = []
    old = signal.signal(signal.SIGHUP, lambda n, _f: calls.append(n))
    try:
        with lab_module._stop_signals_deferred():
            signal.raise_signal(signal.SIGHUP)
            assert calls == []  # held while the helper starts
        assert calls == [signal.SIGHUP]  # delivered, to the handler it was meant for
    finally:
        signal.signal(signal.SIGHUP, old)

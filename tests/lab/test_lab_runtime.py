"""The running lab, measured from the host with fping and snmpget (root; a few seconds each)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netmon.lab import Lab
from netmon.lab.measure import fping
from netmon.lab.model import Scenario, parse_scenario
from tests.lab.conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUNTIME = """
id: runtime
description: devices for the runtime tests
site:
  id: rt
  name: CHC Runtime (lab)
  district: Ranchi
  type: chc
  devices:
    - {name: wan-1, role: wan, snmp: {community: rt-community}}
    - {name: sw-01, role: switch, parent: wan-1}
    - {name: lossy, role: ap, parent: sw-01, faults: {loss: 0.03}}
    - {name: slow, role: ap, parent: sw-01, faults: {delay: 100ms, jitter: 10ms}}
    - {name: dead, role: ap, parent: sw-01, faults: {down: true}}
    - {name: knob, role: ap, parent: sw-01}
    - {name: flap, role: ap, parent: sw-01, faults: {flap: {period: 2s, down_for: 1s}}}
    - {name: sw-snmp, role: switch, parent: wan-1, snmp: {poll: v3}}
events:
  - {after: 1s, action: interface, device: sw-snmp, interface: lan0, oper: down}
"""
BULK_APS = 36  # hosts for the throughput test


def _bulk() -> Scenario:
    lines = [f"    - {{name: ap-{i:02d}, role: ap, parent: sw-01}}" for i in range(1, BULK_APS + 1)]
    text = RUNTIME.replace("id: runtime", "id: bulk").replace("id: rt", "id: rt-bulk")
    head = text.split("    - {name: wan-1")[0]
    return parse_scenario(head + "    - {name: sw-01, role: switch}\n" + "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def lab(start_lab: Callable[..., Lab], tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return start_lab([parse_scenario(RUNTIME), _bulk()], tmp_path_factory.mktemp("runtime-lab"))


def _ping(lab: Lab, ref: str, count: int = 20, period_ms: int = 10) -> tuple[int, list[float]]:
    address = lab.address(ref)
    stats = fping([address], lab.routed, count, period_ms)[address]
    return stats.received, [r * 1000 for r in stats.rtts]


def _snmp(lab: Lab, ref: str, *oids: str, v3: bool = False) -> list[str]:
    agent = lab.agent(ref).describe()
    auth = (["-v3", "-l", "authPriv", "-u", agent["v3"]["user"], "-a", "SHA", "-A", agent["v3"]["auth_key"],
             "-x", "AES", "-X", agent["v3"]["priv_key"]] if v3 else ["-v2c", "-c", agent["community"]])  # fmt: skip
    env = dict(
        os.environ,
        SNMP_PERSISTENT_DIR=str(lab.workdir / "snmpget"),
        MIBS="",
        MIBDIRS="/nonexistent",
    )
    assert lab.routed(agent["address"])
    done = subprocess.run(["snmpget", "-On", "-t", "1", "-r", "1", *auth, agent["address"], *oids],
                          capture_output=True, text=True, timeout=15, env=env, check=True)  # fmt: skip
    return [line.split(" = ", 1)[1] for line in done.stdout.splitlines()]


def _ticks(value: str) -> int:
    match = re.search(r"\((\d+)\)", value)
    assert match, value
    return int(match.group(1))


def test_kernel_echo_is_off_and_the_responder_answers(lab: Lab) -> None:
    assert lab.ns is not None
    assert lab.ns.exec(["sysctl", "-n", "net.ipv4.icmp_echo_ignore_all"]).strip() == "1"
    received, _ = _ping(lab, "rt/wan-1")
    assert received == 20
    assert lab.stats("rt/wan-1")["devices"]["rt/wan-1"]["replies"] >= 20


def test_a_down_device_and_the_lab_link_do_not_answer(lab: Lab) -> None:
    assert _ping(lab, "rt/dead")[0] == 0


def test_three_percent_loss_loses_exactly_30_of_1000(lab: Lab) -> None:
    received, _ = _ping(lab, "rt/lossy", count=1000, period_ms=2)
    counts = lab.stats("rt/lossy")["devices"]["rt/lossy"]
    assert counts["requests"] == 1000 and counts["lost_loss"] == 30
    assert received == 970


def test_delay_and_jitter(lab: Lab) -> None:
    received, rtts = _ping(lab, "rt/slow", count=100, period_ms=10)
    assert received == 100
    assert min(rtts) >= 89.0 and max(rtts) <= 115.0  # 100 ms +- 10 ms, plus a little host time
    assert abs(sum(rtts) / len(rtts) - 100.0) < 4.0


def test_faults_change_at_run_time_and_uplink_down_silences_what_is_behind(lab: Lab) -> None:
    lab.set_fault("rt/knob", delay="50ms")
    assert min(_ping(lab, "rt/knob")[1]) >= 49.0
    lab.set_fault("rt/knob", loss=1.0)
    assert _ping(lab, "rt/knob")[0] == 0
    lab.set_fault("rt/knob", loss=0.0, delay=0)
    assert _ping(lab, "rt/knob")[0] == 20
    lab.set_fault("rt/wan-1", down=True)
    try:
        assert _ping(lab, "rt/knob")[0] == 0 and _ping(lab, "rt/sw-01")[0] == 0
    finally:
        lab.set_fault("rt/wan-1", down=False)
    assert _ping(lab, "rt/knob")[0] == 20


def test_outage_on_demand_ends_by_itself(lab: Lab) -> None:
    lab.outage("rt/knob", 0.5)
    assert _ping(lab, "rt/knob", count=5, period_ms=20)[0] == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _ping(lab, "rt/knob", count=1)[0] == 0:
        time.sleep(0.1)
    assert _ping(lab, "rt/knob")[0] == 20


def test_flapping_device_answers_about_half_the_time(lab: Lab) -> None:
    received, _ = _ping(lab, "rt/flap", count=80, period_ms=50)  # 4 s = two 2 s periods
    assert 25 <= received <= 55


def test_a_few_thousand_echoes_per_second(lab: Lab) -> None:
    hosts = [d.address for d in lab.devices.values() if d.site == "rt-bulk"]
    before = lab.stats()["totals"]["received"]
    started = time.monotonic()
    stats = fping(hosts, lab.routed, count=200, period_ms=10, interval_ms=0)  # 37 x 100/s offered
    elapsed = time.monotonic() - started
    sent = sum(s.sent for s in stats.values())
    received = sum(s.received for s in stats.values())
    totals = lab.stats()["totals"]
    print(
        f"{sent} echoes in {elapsed:.2f} s ({sent / elapsed:.0f}/s), {received} replies; {totals}"
    )
    assert received == sent == len(hosts) * 200
    assert totals["received"] - before == sent and totals["overflow"] == 0


def test_snmp_uptime_reboot_and_interface_status(lab: Lab) -> None:
    uptime, name = _snmp(lab, "rt/wan-1", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0")
    assert _ticks(uptime) >= 0 and name == 'STRING: "wan-1"'
    time.sleep(1.2)
    before = _ticks(_snmp(lab, "rt/wan-1", "1.3.6.1.2.1.1.3.0", v3=True)[0])
    assert before >= 100
    lab.reboot("rt/wan-1")
    after = _ticks(_snmp(lab, "rt/wan-1", "1.3.6.1.2.1.1.3.0")[0])
    assert after < before and after < 100
    assert (
        _snmp(lab, "rt/wan-1", "1.3.6.1.2.1.2.2.1.8.1", "1.3.6.1.2.1.2.2.1.8.2")
        == ["INTEGER: 1"] * 2
    )
    lab.set_interface("rt/wan-1", 2, oper="down")
    assert _snmp(lab, "rt/wan-1", "1.3.6.1.2.1.2.2.1.8.1", "1.3.6.1.2.1.2.2.1.8.2") == [
        "INTEGER: 1",
        "INTEGER: 2",
    ]
    lab.set_interface("rt/wan-1", 2, oper="up")


def test_a_scenario_event_changes_the_agent_at_run_time(lab: Lab) -> None:
    lan0 = "1.3.6.1.2.1.2.2.1.8.2"
    assert wait_until(lambda: bool(lab.fired_events("rt/sw-snmp")), 10.0), (
        "the 1 s event never fired"
    )
    [fired] = lab.fired_events("rt/sw-snmp")
    assert fired.error is None and fired.offset >= 1.0
    assert _snmp(lab, "rt/sw-snmp", lan0, v3=True) == ["INTEGER: 2"]
    assert "rt/sw-snmp: interface lan0 oper=down" in (lab.workdir / "events.log").read_text()


def test_a_stopped_agent_is_silent_while_ping_answers_and_starts_again(lab: Lab) -> None:
    uptime = "1.3.6.1.2.1.1.3.0"
    before = _ticks(_snmp(lab, "rt/sw-snmp", uptime)[0])
    pid = lab.agent("rt/sw-snmp").process.pid  # type: ignore[union-attr]
    lab.stop_agent("rt/sw-snmp")
    try:
        assert pid not in lab.pids() and not lab.agent("rt/sw-snmp").running
        with pytest.raises(subprocess.CalledProcessError):
            _snmp(lab, "rt/sw-snmp", uptime)
        assert _ping(lab, "rt/sw-snmp")[0] == 20
        lab.stop_agent("rt/sw-snmp")  # idempotent
    finally:
        lab.start_agent("rt/sw-snmp")
    assert lab.agent("rt/sw-snmp").running and lab.agent("rt/sw-snmp").process.pid in lab.pids()  # type: ignore[union-attr]
    after = _ticks(_snmp(lab, "rt/sw-snmp", uptime, v3=True)[0])
    assert after > before  # the same device: no reboot, uptime goes on


def test_cli_set_and_reboot_reach_the_running_lab(lab: Lab) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "netmon.cli", "lab", *args], capture_output=True,
                              text=True, timeout=30, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("set", "rt/knob", "delay=40ms", "jitter=0")
    assert min(_ping(lab, "rt/knob")[1]) >= 39.0
    cli("set", "rt/knob", "delay=0")
    cli("set", "rt/wan-1", "if1=down")
    assert _snmp(lab, "rt/wan-1", "1.3.6.1.2.1.2.2.1.8.1") == ["INTEGER: 2"]
    cli("set", "rt/wan-1", "if1=up")
    time.sleep(1.1)
    cli("reboot", "rt/wan-1")
    assert _ticks(_snmp(lab, "rt/wan-1", "1.3.6.1.2.1.1.3.0")[0]) < 100
    assert "running" in cli("status")

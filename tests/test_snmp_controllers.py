"""Controller and switch profiles against snmpsim serving the recorded walks in tests/snmp/data.

Expected values are read from the .snmprec files themselves (an independent oracle), so the
recordings can be regenerated without editing these tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.base import Target
from probes.snmp import SnmpPoller, SnmpSettings, match_aps, missing_aps
from tests.conftest import FakeClock
from tests.snmp import agents, extra
from tests.snmp.agents import DATA, Agent
from tests.snmp.delay_proxy import DelayProxy, ProxyStats

snmpsim_fixture = agents.snmpsim_fixture


def recording(name: str) -> dict[str, str]:
    """oid -> value text of a .snmprec file."""
    lines = (DATA / f"{name}.snmprec").read_text().splitlines()
    return {oid: value for oid, _tag, value in (line.split("|", 2) for line in lines)}


def column(rec: dict[str, str], prefix: str) -> dict[str, str]:
    return {oid[len(prefix) + 1 :]: v for oid, v in rec.items() if oid.startswith(prefix + ".")}


def settings(agent: Agent, community: str, profile: str = "generic") -> SnmpSettings:
    return SnmpSettings(community=community, port=agent.port, profile=profile, timeout=2.0)


@pytest.fixture
def poller() -> SnmpPoller:
    return SnmpPoller.from_directory()


async def test_cisco_wlc_200_aps(snmpsim: Agent, poller: SnmpPoller) -> None:
    rec = recording("cisco-wlc")
    status = column(rec, "1.3.6.1.4.1.14179.2.2.1.1.6")
    names = column(rec, "1.3.6.1.4.1.14179.2.2.1.1.3")
    users = column(rec, "1.3.6.1.4.1.14179.2.2.2.1.15")
    expected = {
        names[i]: (status[i] == "1", sum(int(v) for k, v in users.items() if k.startswith(i + ".")))
        for i in names
    }
    result = await poller.poll(
        Target("rims", "wlc-1", snmpsim.host), settings(snmpsim, "cisco-wlc", "cisco-wlc")
    )
    assert result.ok and extra(result)["complete"], result.reason
    got = {ap["name"]: (ap["up"], ap["clients"]) for ap in extra(result)["aps"]}
    assert got == expected and len(got) == 200
    assert (extra(result)["aps_total"], extra(result)["aps_up"]) == (200, 180)
    assert extra(result)["aps"][0]["mac"] == "00:3a:5a:00:00:01"
    assert [i["oper_up"] for i in extra(result)["interfaces"]] == [True, False]
    json.dumps(extra(result))


@pytest.mark.parametrize(
    ("profile", "total", "up", "name_col", "clients_col"),
    [
        ("ruckus-smartzone", 60, 55, "1.3.6.1.4.1.25053.1.4.2.1.1.2.2.1.5",
         "1.3.6.1.4.1.25053.1.4.2.1.1.2.2.1.15"),
        ("ruckus-zonedirector", 40, 35, "1.3.6.1.4.1.25053.1.2.2.1.1.2.1.1.2",
         "1.3.6.1.4.1.25053.1.2.2.1.1.2.1.1.15"),
        ("cambium-cnpilot", 1, 1, "1.3.6.1.4.1.17713.22.1.1.1.2",
         "1.3.6.1.4.1.17713.22.1.1.1.14"),
    ],
)  # fmt: skip
async def test_other_controller_profiles(
    snmpsim: Agent, poller: SnmpPoller, profile: str, total: int, up: int,
    name_col: str, clients_col: str,
) -> None:  # fmt: skip
    rec = recording(profile)
    names, clients = column(rec, name_col), column(rec, clients_col)
    expected_clients = {names[i]: int(clients[i]) for i in names}
    result = await poller.poll(
        Target("s", profile, snmpsim.host), settings(snmpsim, profile, profile)
    )
    assert result.ok and extra(result)["complete"], result.reason
    aps = extra(result)["aps"]
    assert (extra(result)["aps_total"], extra(result)["aps_up"]) == (total, up)
    assert {ap["name"]: ap["clients"] for ap in aps} == expected_clients
    assert all(ap["mac"] and len(ap["mac"]) == 17 for ap in aps)


async def test_aps_missing_from_the_inventory_are_reported(
    snmpsim: Agent, poller: SnmpPoller
) -> None:
    result = await poller.poll(
        Target("s", "zd", snmpsim.host),
        settings(snmpsim, "ruckus-zonedirector", "ruckus-zonedirector"),
    )
    aps = extra(result)["aps"]
    inventory = [ap["name"] for ap in aps[:30]] + [aps[30]["mac"].upper(), "ZD-AP-99"]
    matched, unknown = match_aps(aps, inventory)
    assert len(matched) == 31
    assert [ap["name"] for ap in unknown] == [ap["name"] for ap in aps[31:]]
    assert missing_aps(aps, inventory) == ["ZD-AP-99"]


async def test_switch_rates_flaps_reboot_reset_and_wrap(snmpsim: Agent, clock: FakeClock) -> None:
    poller = SnmpPoller.from_directory(clock=clock)
    switch = Target("dh-ranchi", "sw-ward-a", snmpsim.host)

    async def poll(community: str, after: float = 60.0, device: Target = switch) -> dict:
        clock.advance(after)
        result = await poller.poll(device, settings(snmpsim, community))
        assert result.ok and extra(result)["complete"], result.reason
        return {row["index"]: row for row in extra(result)["interfaces"]} | {"extra": extra(result)}

    t0 = await poll("switch-24")
    assert len(t0) - 1 == 25 and t0[1]["in_bps"] is None and t0[7]["oper_up"] is False
    t1 = await poll("switch-24-t1")
    assert [t1[i]["in_bps"] for i in (1, 2, 24)] == [1e6, 2e6, 24e6]
    assert [t1[i]["out_bps"] for i in (1, 2, 24)] == [5e5, 1e6, 12e6]
    assert (t1[5]["flaps"], t1[6]["flaps"], t1[1]["flaps"]) == (1, 2, 0)
    assert t1[5]["oper_up"] is False and t1[1]["in_errors"] == 0

    other = Target("dh-ranchi", "sw-ward-b", snmpsim.host)
    await poll("switch-24", device=other)
    reset = await poll("switch-24-reset", device=other)  # port 3 went back, uptime went on
    assert reset[3]["in_bps"] is None and reset[3]["out_bps"] is None
    assert reset["extra"]["notes"] == ["ifIndex 3: in octets reset", "ifIndex 3: out octets reset"]
    assert reset[2]["in_bps"] == 2e6 and not reset["extra"]["rebooted"]

    rebooted = await poll("switch-24-reboot")
    assert rebooted["extra"]["rebooted"] and rebooted["extra"]["sys_uptime_seconds"] == 30.0
    assert all(rebooted[i]["in_bps"] is None for i in range(1, 25))

    await poll("switch-24-wrap0", after=3600.0)
    wrapped = await poll("switch-24-wrap1")
    assert wrapped[1]["in_bps"] == 1e6 and "ifIndex 1: in octets wrap" in wrapped["extra"]["notes"]


@pytest.mark.parametrize("profile", ["generic", "cisco-wlc"])
async def test_tables_are_read_in_multi_column_chains(snmpsim: Agent, profile: str) -> None:
    """Through a delay proxy: each table is one chain of GETBULKs carrying all its open
    columns (snmpsim answers at most 64 varbinds, so a chain is several requests), the scalars
    ride in the first one. With 1 table read at a time the round trips are the requests, one
    after another; with 4 the cisco-wlc's three tables are read at once: fewer rounds, the same
    data. A second poll starts from the row counts learned by the first: no more requests.
    Structure, not wall-clock: the proxy counts the requests and the chain of round trips."""
    community = "switch-24" if profile == "generic" else profile
    seen = {}
    async with DelayProxy((snmpsim.host, snmpsim.port), delay=0.002) as proxy:
        for max_walks in (1, 4):
            poller = SnmpPoller.from_directory()
            rounds = []
            for _poll in range(2):
                proxy.stats = ProxyStats()
                result = await poller.poll(
                    Target("s", profile, proxy.host),
                    SnmpSettings(community=community, port=proxy.port, profile=profile,
                                 max_walks=max_walks),
                )  # fmt: skip
                assert result.ok and extra(result)["complete"], result.reason
                assert result.sent == result.received == proxy.stats.requests
                rounds.append((proxy.stats.rounds, proxy.stats.requests))
            data = {k: v for k, v in extra(result).items() if k not in ("poll_seconds",)}
            seen[max_walks] = (rounds, data)
    (seq, seq_data), (par, par_data) = seen[1], seen[4]
    assert par_data == seq_data
    (cold_rounds, cold_requests), (warm_rounds, warm_requests) = seq
    assert cold_rounds == cold_requests and warm_rounds == warm_requests <= cold_requests
    assert [requests for _, requests in par] == [cold_requests, warm_requests]
    if profile == "generic":  # one table: 4 scalars + 9 x 25 cells, 64 varbinds an answer
        assert seq[0] == par[0] == (4, 4)
    else:
        assert par[0][0] < seq[0][0]


async def test_recordings_are_current() -> None:
    """tests/snmp/data matches what make_recordings.py generates."""
    from tests.snmp.make_recordings import recordings, render

    for name, rows in recordings().items():
        assert (DATA / f"{name}.snmprec").read_text() == render(rows), name
    assert Path(DATA).is_dir()

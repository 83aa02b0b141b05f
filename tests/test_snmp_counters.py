"""Rates, wraps, resets, reboots and flaps: the pure functions, then the poller with a fake
SNMP client behind the real seam (``client_factory``) and a fake clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

import pytest

from probes.base import Target
from probes.snmp import SnmpPoller, SnmpSettings, match_aps, missing_aps, normalize_mac
from probes.snmp_client import PerColumn, RequestStats, SnmpClient, SnmpRequestError, Value
from probes.snmp_counters import (
    DeviceState,
    InterfaceState,
    counter_increase,
    error_increase,
    error_increases,
    flap_increment,
    octet_rate,
    octet_rates,
    rebooted,
    reboots,
)
from probes.snmp_findings import Interface, from_columns
from probes.snmp_profiles import load_profiles
from tests.conftest import FakeClock
from tests.snmp import extra

# -- pure functions --------------------------------------------------------------------------


def test_uptime_going_back_is_a_reboot_but_a_timeticks_wrap_is_not() -> None:
    assert not rebooted(100_000, 106_000, 60)
    assert rebooted(100_000, 3_000, 60)
    assert not rebooted(2**32 - 1_000, 5_000, 60)  # wrapped after ~497 days
    assert rebooted(2**32 - 1_000, 900_000, 60)  # went back, but not to where a wrap lands


def test_uptime_that_lags_the_wall_clock_is_a_reboot_in_between() -> None:
    assert rebooted(30_000, 40_000, 3600)  # 100 s of uptime over an hour
    assert not rebooted(30_000, 30_000 + 360_000 - 5_000, 3600)  # within the slack


def test_counter_increase_allows_one_wrap() -> None:
    assert counter_increase(10, 25, 32) == 15
    assert counter_increase(2**32 - 5, 10, 32) == 15
    assert counter_increase(2**64 - 5, 10, 64) == 15


def test_octet_rate_handles_wrap_reset_and_absurd_jumps() -> None:
    assert octet_rate(1_000, 751_000, 64, 60, 1e9) == (100_000.0, "")
    assert octet_rate(2**32 - 250_000, 500_000, 32, 60, 1e9) == (100_000.0, "wrap")
    assert octet_rate(2**64 - 250_000, 500_000, 64, 60, 1e9) == (100_000.0, "wrap")
    assert octet_rate(900_000_000, 1_000, 64, 60, 1e9) == (None, "reset")  # went back
    assert octet_rate(0, 10**15, 64, 60, 1e9) == (None, "implausible")
    assert octet_rate(0, 10, 64, 0, 1e9) == (None, "no interval")


def test_error_increase() -> None:
    assert error_increase(5, 9, 32) == 4
    assert error_increase(2**32 - 1, 3, 32) == 4
    assert error_increase(1_000_000, 3, 32) is None


@pytest.mark.parametrize("seed", range(40))
def test_column_wise_rates_are_the_one_by_one_ones(seed: int) -> None:
    """octet_rates / error_increases (the interface rows' column-wise path) give exactly what
    octet_rate / error_increase give counter by counter: forward, wrapped, reset, implausible,
    missing readings, a zero interval."""
    rng = random.Random(seed)
    width = rng.choice([32, 64])
    n = rng.choice([0, 1, 5, 24])
    prev = [rng.randrange(2**width) for _ in range(n)]
    cur = [(p + rng.choice([0, 1, 10**6, 10**9, 2**width - 5, -3])) % 2**width for p in prev]
    if n and rng.random() < 0.3:
        cur[rng.randrange(n)] = None  # type: ignore[call-overload]
    elapsed = rng.choice([60.0, 1.5, 0.0])
    caps = [rng.choice([1e9 * 1.05, 400e9, 1e3]) for _ in range(n)]
    rates, notes = octet_rates(prev, cur, width, elapsed, caps)
    for i, (p, c, cap) in enumerate(zip(prev, cur, caps, strict=True)):
        want = (None, "") if c is None else octet_rate(p, c, width, elapsed, cap)
        assert (rates[i], notes.get(i, "")) == want
    errors = error_increases(prev, cur, width)
    assert errors == [None if c is None else error_increase(p, c, width) for p, c in zip(prev, cur, strict=True)]  # fmt: skip


def test_from_columns_builds_the_objects_init_would() -> None:
    rows = [(i, f"p{i}", True, None, 1.5, None, 0, None, i, 2**40, 7, 0, None) for i in range(5)]
    built = from_columns(Interface, *map(list, zip(*rows, strict=True)))
    assert built == [Interface(*row) for row in rows]
    with pytest.raises(AttributeError):
        built[0].index = 9  # type: ignore[misc]  # still frozen
    states = from_columns(InterfaceState, [1], [2], [3], [4], [1], [5], [0])
    assert states == [InterfaceState(1, 2, 3, 4, 1, 5, 0)]
    with pytest.raises(TypeError):
        from_columns(InterfaceState, [1], [2])


def test_flap_increment() -> None:
    assert flap_increment(None, 1, None, 5) == 0
    assert flap_increment(1, 2, 5, 9) == 1
    assert flap_increment(1, 1, 5, 9) == 2  # down and up again between polls
    assert flap_increment(1, 1, 5, 5) == 0


def test_mac_spellings_and_ap_matching() -> None:
    assert normalize_mac("00-3A-5A-00-00-01") == "00:3a:5a:00:00:01"
    assert normalize_mac("003a.5a00.0001") == "00:3a:5a:00:00:01"
    assert normalize_mac("AP-RIMS-001") is None
    aps = [
        {"name": "AP-1", "mac": "00:3a:5a:00:00:01", "up": True, "clients": 3},
        {"name": "AP-2", "mac": "00:3a:5a:00:00:02", "up": False, "clients": 0},
        {"name": "AP-rogue", "mac": "00:3a:5a:00:00:03", "up": True, "clients": 1},
    ]
    known = ["ap-1", "003A.5A00.0002", "AP-9"]
    matched, unknown = match_aps(aps, known)
    assert [ap["name"] for ap in matched] == ["AP-1", "AP-2"]
    assert [ap["name"] for ap in unknown] == ["AP-rogue"]
    assert missing_aps(aps, known) == ["AP-9"]


# -- the poller behind the seam --------------------------------------------------------------

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_CHANGE = "1.3.6.1.2.1.2.2.1.9"
IF_IN_ERR = "1.3.6.1.2.1.2.2.1.14"
HC_IN = "1.3.6.1.2.1.31.1.1.1.6"
HC_OUT = "1.3.6.1.2.1.31.1.1.1.10"
HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(arc) for arc in oid.split("."))


class FakeAgent:
    """What a device holds right now; tests edit ``objects`` between polls."""

    def __init__(self) -> None:
        self.objects: dict[str, Value] = {}
        self.hang_after: int | None = None  # stop answering after this many requests
        self.hang_walks: set[str] = set()  # column walks that never get an answer
        self.fail_walks: set[str] = set()  # column walks the agent answers with an error
        self.engine_id = b"fake-engine-1"  # what a v3 client learns
        self.opened_with: list[bytes | None] = []  # engine ids the poller passed to open()
        self.walks_in_flight = self.peak_walks = 0


class FakeClient(PerColumn):
    """An :class:`SnmpClient` over a :class:`FakeAgent` (no network)."""

    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent
        self.stats = RequestStats()
        self.engine_id: bytes | None = None

    async def _request(self, hang: bool = False) -> None:
        self.stats.sent += 1
        if hang or (self.agent.hang_after is not None and self.stats.sent > self.agent.hang_after):
            await asyncio.sleep(3600)  # never answers; the poll's bound must end this
        await asyncio.sleep(0)  # the answer comes later: other walks get to send meanwhile
        self.stats.received += 1

    async def open(self, engine_id: bytes | None = None) -> None:
        self.agent.opened_with.append(engine_id)
        self.engine_id = self.agent.engine_id

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        await self._request()
        return {oid: self.agent.objects[oid] for oid in oids if oid in self.agent.objects}

    async def walk(self, oid: str) -> AsyncIterator[tuple[str, Value]]:
        agent = self.agent
        agent.walks_in_flight += 1
        agent.peak_walks = max(agent.peak_walks, agent.walks_in_flight)
        try:
            await self._request(hang=oid in agent.hang_walks)
            if oid in agent.fail_walks:
                raise SnmpRequestError("SNMP request failed: FakeError")
            for name in sorted(agent.objects, key=_oid_key):
                if name.startswith(oid + "."):
                    yield name, agent.objects[name]
        finally:
            agent.walks_in_flight -= 1


def device(
    uptime: int, in_octets: int, oper: int = 1, change: int = 100, errors: int = 0
) -> dict[str, Value]:
    return {
        SYS_UPTIME: uptime,
        f"{IF_OPER}.1": oper,
        f"{IF_CHANGE}.1": change,
        f"{IF_IN_ERR}.1": errors,
        f"{HC_IN}.1": in_octets,
        f"{HC_OUT}.1": 0,
        f"{HIGH_SPEED}.1": 1000,
    }


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def poller(agent: FakeAgent, clock: FakeClock) -> SnmpPoller:
    async def factory(address: str, settings: SnmpSettings) -> SnmpClient:
        return FakeClient(agent)

    return SnmpPoller(load_profiles(), client_factory=factory, clock=clock)


TARGET = Target("site-1", "sw-1", "192.0.2.1")
SETTINGS = SnmpSettings(community="fake")


async def test_rates_wrap_reset_and_reboot_across_polls(
    poller: SnmpPoller, agent: FakeAgent, clock: FakeClock
) -> None:
    agent.objects = device(100_000, 2**64 - 3_750_000)
    first = await poller.poll(TARGET, SETTINGS)
    assert first.ok and extra(first)["interfaces"][0]["in_bps"] is None  # no baseline yet

    clock.advance(60)
    agent.objects = device(106_000, 3_750_000, errors=4)  # wrapped: 7.5 MB in 60 s
    second = await poller.poll(TARGET, SETTINGS)
    row = extra(second)["interfaces"][0]
    assert row["in_bps"] == 1_000_000.0 and row["in_errors"] == 4
    assert extra(second)["notes"] == ["ifIndex 1: in octets wrap"] and not extra(second)["rebooted"]

    clock.advance(60)
    agent.objects = device(112_000, 1_000)  # went back while sysUpTime went on: a reset
    third = await poller.poll(TARGET, SETTINGS)
    assert extra(third)["interfaces"][0]["in_bps"] is None
    assert extra(third)["notes"] == ["ifIndex 1: in octets reset"]

    clock.advance(60)
    agent.objects = device(500, 1_000)  # sysUpTime went back: rebooted, no rates this time
    fourth = await poller.poll(TARGET, SETTINGS)
    assert extra(fourth)["rebooted"] and extra(fourth)["interfaces"][0]["in_bps"] is None
    assert extra(fourth)["sys_uptime_seconds"] == 5.0


async def test_flaps_accumulate(poller: SnmpPoller, agent: FakeAgent, clock: FakeClock) -> None:
    for uptime, oper, change, flaps in [
        (100_000, 1, 100, 0),
        (106_000, 2, 105_000, 1),  # went down
        (112_000, 2, 105_000, 1),
        (118_000, 2, 117_000, 3),  # came up and went down again between polls
    ]:
        agent.objects = device(uptime, 0, oper=oper, change=change)
        result = await poller.poll(TARGET, SETTINGS)
        assert extra(result)["interfaces"][0]["flaps"] == flaps
        clock.advance(60)


async def test_a_poll_cut_short_is_partial_and_keeps_the_old_baseline(
    poller: SnmpPoller, agent: FakeAgent, clock: FakeClock
) -> None:
    agent.objects = device(100_000, 0)
    await poller.poll(TARGET, SETTINGS)
    baseline = poller.state_of(TARGET)
    clock.advance(60)
    agent.hang_after = 3  # GET and two column walks answer, then silence
    settings = SnmpSettings(community="fake", max_poll_time=0.2)
    result = await poller.poll(TARGET, settings)
    assert result.ok and not extra(result)["complete"]
    assert result.reason == "partial poll: poll exceeded its 0.2s bound"
    assert extra(result)["sys_uptime_seconds"] == 1000.0
    assert poller.state_of(TARGET) is not None and poller.state_of(TARGET).at == baseline.at


async def test_controller_aps_sum_clients_over_radios(poller: SnmpPoller, agent: FakeAgent) -> None:
    ap, radio = "1.3.6.1.4.1.14179.2.2.1.1", "1.3.6.1.4.1.14179.2.2.2.1.15"
    agent.objects = {SYS_UPTIME: 1}
    for n, status in ((1, 1), (2, 2)):
        index = f"0.11.22.33.44.{n}"
        agent.objects |= {
            f"{ap}.1.{index}": bytes([0, 11, 22, 33, 44, n]),
            f"{ap}.3.{index}": f"AP-{n}".encode(),
            f"{ap}.6.{index}": status,
            f"{radio}.{index}.0": 3 * n,
            f"{radio}.{index}.1": 4 * n,
        }
    result = await poller.poll(TARGET, SnmpSettings(community="fake", profile="cisco-wlc"))
    assert extra(result)["aps"] == [
        {"name": "AP-1", "mac": "00:0b:16:21:2c:01", "up": True, "clients": 7},
        {"name": "AP-2", "mac": "00:0b:16:21:2c:02", "up": False, "clients": 14},
    ]
    assert (extra(result)["aps_total"], extra(result)["aps_up"]) == (2, 1)
    assert extra(result)["interfaces"] == []


async def test_unknown_profile_is_a_failed_result(poller: SnmpPoller) -> None:
    result = await poller.poll(TARGET, SnmpSettings(community="fake", profile="nope"))
    assert not result.ok and result.reason == "unknown SNMP profile 'nope'"


# -- concurrent walks and the SNMPv3 engine id ----------------------------------------------

IF_COLUMNS = 9  # the generic profile's interface columns


@pytest.mark.parametrize("max_walks", [1, 2, 4, 16])
async def test_columns_are_walked_concurrently_up_to_max_walks(
    poller: SnmpPoller, agent: FakeAgent, max_walks: int
) -> None:
    agent.objects = device(100_000, 5_000)
    result = await poller.poll(TARGET, SnmpSettings(community="fake", max_walks=max_walks))
    assert result.ok and extra(result)["complete"], result.reason
    assert agent.peak_walks == min(max_walks, IF_COLUMNS)
    assert result.sent == result.received == 1 + IF_COLUMNS  # the GET, then one per column
    assert extra(result)["interfaces"][0]["name"] is None  # (the fake device has no ifName)
    assert extra(result)["interfaces"][0]["oper_up"] is True


async def test_the_first_failing_walk_ends_the_poll_and_cancels_the_others(
    poller: SnmpPoller, agent: FakeAgent
) -> None:
    agent.objects = device(100_000, 5_000)
    agent.fail_walks = {IF_OPER}
    agent.hang_walks = {IF_CHANGE}  # in flight when the other walk fails: must be cancelled
    settings = SnmpSettings(community="fake", max_walks=4, max_poll_time=30.0)
    result = await poller.poll(TARGET, settings)
    assert result.ok and not extra(result)["complete"]
    assert result.reason == "partial poll: SNMP request failed: FakeError"  # not the bound
    assert extra(result)["sys_uptime_seconds"] == 1000.0
    assert result.sent - result.received >= 1  # the cancelled request: sent, never answered
    assert agent.walks_in_flight == 0


async def test_the_v3_engine_id_is_remembered_per_device_address_and_port(
    poller: SnmpPoller, agent: FakeAgent
) -> None:
    agent.objects = device(100_000, 5_000)
    v3 = SnmpSettings(version="3", user="u", auth_key="auth-secret")
    await poller.poll(TARGET, v3)
    await poller.poll(TARGET, v3)
    assert agent.opened_with == [None, b"fake-engine-1"]
    assert poller.engine_id_of(TARGET, v3) == b"fake-engine-1"
    assert poller.engine_id_of(TARGET, SnmpSettings(version="3", user="u", port=1161)) is None
    moved = Target(TARGET.site, TARGET.device, "192.0.2.99")
    assert poller.engine_id_of(moved, v3) is None
    await poller.poll(moved, v3)  # a new address: discover again, then remember that one
    assert agent.opened_with[-1] is None and poller.engine_id_of(moved, v3) == b"fake-engine-1"
    poller.forget(moved)
    assert poller.engine_id_of(moved, v3) is None
    await poller.poll(TARGET, SETTINGS)  # v2c: nothing to remember
    assert agent.opened_with[-1] is None and poller.engine_id_of(TARGET, SETTINGS) is None


def test_a_reboot_is_judged_against_the_latest_reading_of_any_poll() -> None:
    """Complete poll A, a reboot, partial poll B (sysUpTime read, counters no baseline),
    complete C, complete D: B reports the reboot, C does not again (but its counters, against
    A, are void), D is clean. Without B's reading, C reports it (once)."""
    a = DeviceState(at=0.0, uptime_ticks=360_000, seen_at=0.0, seen_ticks=360_000)  # up 1 h
    assert reboots(a, 60.0, 1_500) == (True, True)  # B: 15 s of uptime after 60 s: rebooted
    a.saw_uptime(60.0, 1_500)  # what the poller keeps from the partial poll B
    assert reboots(a, 120.0, 7_500) == (False, True)  # C: counted already; counters from A void
    c = DeviceState(at=120.0, uptime_ticks=7_500, seen_at=120.0, seen_ticks=7_500)
    assert reboots(c, 180.0, 13_500) == (False, False)  # D
    unseen = DeviceState(at=0.0, uptime_ticks=360_000, seen_at=0.0, seen_ticks=360_000)
    assert reboots(unseen, 120.0, 7_500) == (True, True)  # B read no sysUpTime: C counts it
    assert reboots(None, 60.0, 1_500) == (False, False)
    assert reboots(a, 60.0, None) == (False, False)

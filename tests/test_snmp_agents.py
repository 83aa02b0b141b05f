"""The SNMP probe against a real net-snmp ``snmpd`` on 127.0.0.1: v2c, v3, bad credentials,
an agent that stops answering, and the bound on concurrency. Nothing leaves loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probes.base import ProbeResult, Target, run_probe
from probes.snmp import KIND as SNMP
from probes.snmp import SnmpParams, SnmpPoller, SnmpSettings
from probes.snmp_ber import Response
from probes.snmp_bulk import BulkClient
from probes.snmp_client import SnmpClient, open_client
from tests.snmp import agents, extra
from tests.snmp.agents import (
    COMMUNITY,
    V3_AUTH_USER,
    V3_NOAUTH_USER,
    V3_PRIV_USER,
    Agent,
    start_snmpd,
)
from tests.snmp.delay_proxy import DelayProxy, ProxyStats

snmpd_fixture = agents.snmpd_fixture
own_snmpd_fixture = agents.own_snmpd_fixture

SECRETS = (COMMUNITY, V3_PRIV_USER[2], V3_PRIV_USER[4], V3_AUTH_USER[2])
ENGINE_ID = b"\x80\x00\x1f\x88\x04netmontest"  # snmpd's "engineId netmontest"
SYS_NAME = "1.3.6.1.2.1.1.5.0"


def target(agent: Agent) -> Target:
    return Target("lab", "snmpd-1", agent.host)


def v2c(agent: Agent, **kwargs: object) -> SnmpSettings:
    return SnmpSettings(community=COMMUNITY, port=agent.port, **kwargs)  # type: ignore[arg-type]


def v3_priv(agent: Agent, **kwargs: object) -> SnmpSettings:
    user, auth_proto, auth_key, priv_proto, priv_key = V3_PRIV_USER
    values = {
        "version": "3",
        "user": user,
        "auth_protocol": auth_proto,
        "auth_key": auth_key,
        "priv_protocol": priv_proto,
        "priv_key": priv_key,
        "port": agent.port,
    } | kwargs
    return SnmpSettings(**values)  # type: ignore[arg-type]  # fmt: skip


def assert_no_secret(result: ProbeResult, caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    text = " ".join([repr(result), result.reason, json.dumps(extra(result)), caplog.text])
    for secret in (*SECRETS, *secrets):
        assert secret not in text


@pytest.fixture
def poller() -> SnmpPoller:
    return SnmpPoller.from_directory()


async def test_v2c_reads_system_and_interfaces(snmpd: Agent, poller: SnmpPoller) -> None:
    result = await poller.poll(target(snmpd), v2c(snmpd))
    assert result.ok and result.reason == "" and extra(result)["complete"]
    assert result.kind == "snmp" and result.sent == result.received >= 1
    assert extra(result)["sys_name"] == "netmon-test-snmpd"
    assert extra(result)["sys_uptime_seconds"] > 0 and not extra(result)["rebooted"]
    names = {row["name"] for row in extra(result)["interfaces"]}
    assert "lo" in names
    assert extra(result)["aps"] is None and len(result.rtts) == 1
    json.dumps(extra(result))  # serialisable as is


async def test_v2c_rates_on_the_second_poll(snmpd: Agent, poller: SnmpPoller) -> None:
    await poller.poll(target(snmpd), v2c(snmpd))
    await asyncio.sleep(1.0)  # keep our own SNMP traffic on lo far below its 10 Mbit/s speed
    result = await poller.poll(target(snmpd), v2c(snmpd))
    lo = next(row for row in extra(result)["interfaces"] if row["name"] == "lo")
    assert lo["in_bps"] is not None and lo["in_bps"] >= 0 and lo["in_errors"] == 0


async def test_v3_auth_priv_sha_aes(snmpd: Agent, poller: SnmpPoller) -> None:
    settings = v3_priv(snmpd)
    assert settings.security_level == "authPriv"
    result = await poller.poll(target(snmpd), settings)
    assert result.ok and extra(result)["complete"], result.reason
    assert extra(result)["sys_name"] == "netmon-test-snmpd"


async def test_v3_auth_no_priv_sha256(snmpd: Agent, poller: SnmpPoller) -> None:
    user, proto, key = V3_AUTH_USER
    settings = SnmpSettings(
        version="3", user=user, auth_protocol=proto, auth_key=key, port=snmpd.port
    )
    assert settings.security_level == "authNoPriv"
    result = await poller.poll(target(snmpd), settings)
    assert result.ok and extra(result)["complete"], result.reason


async def test_v3_no_auth_no_priv(snmpd: Agent, poller: SnmpPoller) -> None:
    """No time window without auth: the extra walk sessions send nothing before walking."""
    settings = SnmpSettings(version="3", user=V3_NOAUTH_USER, port=snmpd.port)
    assert settings.security_level == "noAuthNoPriv"
    sequential = await poller.poll(target(snmpd), replace(settings, max_walks=1))
    result = await poller.poll(target(snmpd), settings)
    assert result.ok and extra(result)["complete"], result.reason
    assert extra(result)["sys_name"] == "netmon-test-snmpd"
    assert result.sent == result.received == sequential.sent


@pytest.mark.parametrize("max_walks", [1, 4])
async def test_v3_engine_id_is_remembered_between_polls(snmpd: Agent, max_walks: int) -> None:
    """The second poll skips the engine-id discovery: one request and one round trip fewer."""
    poller = SnmpPoller.from_directory()
    async with DelayProxy((snmpd.host, snmpd.port), delay=0.002) as proxy:
        settings = v3_priv(snmpd, port=proxy.port, max_walks=max_walks)
        node = Target("lab", "snmpd-1", proxy.host)
        polls = []
        for _ in range(2):
            proxy.stats = ProxyStats()
            result = await poller.poll(node, settings)
            assert result.ok and extra(result)["complete"], result.reason
            assert result.sent == result.received == proxy.stats.requests
            polls.append((result.sent, proxy.stats.rounds))
    (cold_sent, cold_rounds), (warm_sent, warm_rounds) = polls
    assert (warm_sent, warm_rounds) == (cold_sent - 1, cold_rounds - 1)
    assert poller.engine_id_of(node, settings) == ENGINE_ID


async def test_a_stale_engine_id_costs_one_attempt_then_is_rediscovered(snmpd: Agent) -> None:
    client = await open_client(snmpd.host, v3_priv(snmpd, timeout=0.3))
    await client.open(b"\x80\x00\x1f\x88\x04replaced")  # the device was replaced
    assert client.engine_id == ENGINE_ID
    assert (client.stats.sent, client.stats.received) == (1 + 2, 2)  # stale try; discovery
    assert (await client.get([SYS_NAME]))[SYS_NAME] == b"netmon-test-snmpd"


@pytest.mark.parametrize(
    ("make", "reason", "wrong"),
    [
        (lambda a: SnmpSettings(community="wrong-community-1", port=a.port, timeout=0.3),
         "no SNMP response after 2 attempts of 0.3s (device down or unreachable, or wrong "
         "community)", "wrong-community-1"),
        (lambda a: v3_priv(a, auth_key="wrong-auth-key-2"),
         "SNMPv3 authentication failed (unknown user, or wrong auth protocol or key)",
         "wrong-auth-key-2"),
        (lambda a: v3_priv(a, priv_key="wrong-priv-key-3", timeout=0.3),
         "no SNMP response after 2 attempts of 0.3s (device down or unreachable, or wrong "
         "privacy key)", "wrong-priv-key-3"),
        (lambda a: v3_priv(a, user="nobody"),
         "SNMPv3 authentication failed (unknown user, or wrong auth protocol or key)", "nobody"),
    ],
    ids=["wrong-community", "wrong-auth-key", "wrong-priv-key", "unknown-user"],
)  # fmt: skip
async def test_wrong_credentials_fail_without_leaking_them(
    snmpd: Agent,
    poller: SnmpPoller,
    caplog: pytest.LogCaptureFixture,
    make: object,
    reason: str,
    wrong: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make(snmpd)  # type: ignore[operator]
    result = await poller.poll(target(snmpd), settings)
    assert not result.ok and result.reason == reason
    if "no SNMP response" in reason:  # v3: only the engine-id discovery was answered
        assert result.received == (1 if settings.version == "3" else 0)
    else:
        assert result.received == result.sent
    assert result.rtts == () and not extra(result)["complete"]
    assert "SNMP poll of lab/snmpd-1 fails" in caplog.text  # logged once, on the state change
    assert_no_secret(result, caplog, wrong)


@pytest.mark.parametrize("max_walks", [1, 4])
async def test_agent_stopping_mid_walk_gives_a_partial_result(
    own_snmpd: Agent, poller: SnmpPoller, caplog: pytest.LogCaptureFixture, max_walks: int
) -> None:
    """SIGSTOP snmpd once the first GETBULK (scalars and the first row) is answered: the poll
    returns within its bound, partial; the table's next request spends its attempts unanswered
    (the generic profile has one table: one chain in flight whatever ``max_walks`` allows)."""
    caplog.set_level(logging.DEBUG)

    async def pausing_factory(address: str, settings: SnmpSettings) -> SnmpClient:
        return PauseAfterFirstAnswer(address, settings, own_snmpd)

    poller = SnmpPoller(poller.profiles, client_factory=pausing_factory)
    settings = v2c(own_snmpd, timeout=0.3, retries=1, max_poll_time=3.0, max_walks=max_walks,
                   max_repetitions=1)  # fmt: skip
    begun = time.monotonic()
    result = await poller.poll(target(own_snmpd), settings)
    assert time.monotonic() - begun < 3.0
    assert result.ok and not extra(result)["complete"]
    assert (
        result.reason == "partial poll: no SNMP response after 2 attempts of 0.3s (device down or "
        "unreachable, or wrong community)"
    )
    assert extra(result)["sys_name"] == "netmon-test-snmpd"  # what came before the stop is kept
    assert result.sent == result.received + 2  # the table's second request, twice
    assert_no_secret(result, caplog)


class PauseAfterFirstAnswer(BulkClient):
    """The real v2c client; pauses the agent once its first request has been answered (and
    asks for ``settings.max_repetitions`` rows per request, so a poll takes several)."""

    def __init__(self, ip: str, settings: SnmpSettings, agent: Agent) -> None:
        super().__init__(ip, settings)
        self.agent = agent

    async def read(self, *args: Any) -> None:
        for table in args[1]:
            table.repetitions = 0  # not the size learned at the last poll: settings' rows each
        await super().read(*args)

    async def _request(self, *args: Any) -> Response:
        answer = await super()._request(*args)
        if self.stats.received == 1:
            self.agent.pause()
        return answer


async def test_a_stopped_agent_is_bounded_by_max_poll_time(
    own_snmpd: Agent, poller: SnmpPoller
) -> None:
    own_snmpd.pause()
    settings = v2c(own_snmpd, timeout=1.0, retries=5, max_poll_time=0.8)
    begun = time.monotonic()
    result = await poller.poll(target(own_snmpd), settings)
    assert time.monotonic() - begun < 1.5
    assert not result.ok and result.reason == "poll exceeded its 0.8s bound"


async def test_the_probe_returns_before_the_runners_deadline(
    own_snmpd: Agent, poller: SnmpPoller
) -> None:
    own_snmpd.pause()
    settings = v2c(own_snmpd, timeout=1.0, retries=10, max_poll_time=30.0)
    node = Target("lab", "snmpd-1", own_snmpd.host)
    params = SnmpParams(settings, deadline=2.0)
    result = await run_probe(SNMP, poller, node, params)
    assert not result.ok and result.reason == "poll exceeded its 1.5s bound"
    assert result.duration < params.deadline


async def test_probe_without_poller() -> None:
    params = SnmpParams(SnmpSettings(community="public"))
    assert params.deadline == 21.0  # the default max_poll_time, plus the runner's margin
    result = await run_probe(SNMP, None, Target("lab", "x", "127.0.0.1"), params)
    assert not result.ok and result.reason == "no SNMP poller"


async def test_concurrency_is_bounded(snmpd: Agent) -> None:
    in_flight = peak = 0

    async def counting_factory(address: str, settings: SnmpSettings) -> SnmpClient:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        client = await open_client(address, settings)
        original = client.read

        async def read(*args):  # type: ignore[no-untyped-def]
            nonlocal in_flight
            try:
                await asyncio.sleep(0.05)  # hold the slot so polls overlap
                return await original(*args)
            finally:
                in_flight -= 1

        client.read = read  # type: ignore[method-assign]
        return client

    poller = SnmpPoller.from_directory(max_concurrency=3, client_factory=counting_factory)
    devices = [Target("lab", f"d{i}", snmpd.host) for i in range(12)]
    results = await asyncio.gather(*(poller.poll(d, v2c(snmpd)) for d in devices))
    assert all(r.ok for r in results) and peak == 3


async def test_a_reboot_is_counted_once_when_the_poll_after_it_is_partial(
    own_snmpd: Agent, poller: SnmpPoller, tmp_path: Path
) -> None:
    """The drill: ``netmon lab reboot``, and the first poll after it partial ("no SNMP response
    after 2 attempts"). That poll saw sysUpTime go back and reported the reboot; the next
    complete poll compared with the uptime from before the reboot again and reported it a
    second time ("rebooted 2 time(s)", 10 ms apart). A real snmpd restart, a real stall."""
    agent = own_snmpd
    pause_next: list[Agent] = []

    async def factory(address: str, settings: SnmpSettings) -> SnmpClient:
        if pause_next:
            return PauseAfterFirstAnswer(address, settings, pause_next.pop())
        return await open_client(address, settings)

    poller = SnmpPoller(poller.profiles, client_factory=factory)
    settings = v2c(agent, timeout=0.3, retries=1, max_poll_time=3.0, max_walks=1,
                   max_repetitions=1)  # fmt: skip
    await asyncio.sleep(1.5)  # an uptime the restarted agent's is well below
    before = await poller.poll(target(agent), settings)
    assert before.ok and extra(before)["complete"] and not extra(before)["rebooted"]
    agent.stop()
    with start_snmpd(tmp_path / "snmpd", port=agent.port) as restarted:  # the reboot
        pause_next.append(restarted)
        partial = await poller.poll(target(agent), settings)
        restarted.resume()
        complete = await poller.poll(target(agent), settings)
        await asyncio.sleep(1.0)  # our own SNMP traffic on lo far below its 10 Mbit/s speed
        later = await poller.poll(target(agent), settings)
    assert partial.ok and not extra(partial)["complete"]
    assert partial.reason.startswith("partial poll: no SNMP response after 2 attempts")
    assert extra(partial)["sys_uptime_seconds"] < extra(before)["sys_uptime_seconds"]
    assert extra(partial)["rebooted"]  # counted by the first poll that saw it ...
    assert extra(complete)["complete"] and not extra(complete)["rebooted"]  # ... and only there
    assert not extra(later)["rebooted"]

    def lo_in_bps(result: ProbeResult) -> float | None:
        return next(r["in_bps"] for r in extra(result)["interfaces"] if r["name"] == "lo")

    assert lo_in_bps(complete) is None  # its counters' baseline is from before the reboot
    assert lo_in_bps(later) is not None  # and the next one has rates again

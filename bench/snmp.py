"""Benchmark netmon's SNMP poller against the net-snmp CLI on loopback agents.

    python bench/snmp.py --polls 300 --concurrency 20

Starts its own agents on 127.0.0.1 (snmpsim serving tests/snmp/data, and snmpd) and stops them
at the end; nothing leaves the host. Scenarios, each measured for every tool in the same run:

* ``switch-24``: one device poll = sysUpTime + the 24-port (+vlan1) interface table, N polls
  with C in flight, against snmpsim (recording ``switch-24``). netmon polls the ``generic``
  profile (1 GET + 9 column walks, rates included). ``snmpbulkget`` reads sysUpTime and the same
  9 columns in ONE request (-Cn1 -Cr26); ``snmpbulkwalk`` walks the whole ifTable (22 columns)
  plus ifXTable's counters -- what a CLI-based poller typically runs.
* ``snmpd``: the same poll against net-snmp's snmpd (a fast C agent; host interfaces only),
  which shows the clients' throughput rather than snmpsim's (a Python agent on one core).
* ``wlc-200``: time to fully read a 200-AP Cisco WLC (profile ``cisco-wlc``: AP name, MAC,
  status, per-radio clients + uplinks) vs ``snmpbulkwalk`` of the same four AP columns.
* ``--libs``: the measurement behind choosing gufo-snmp: 2,000 GETs with 100 in flight against
  snmpd (gufo-snmp vs pysnmp 7), and a 1,078-varbind ifTable walk (recording ``bench-49``)
  with gufo-snmp, pysnmp and ``snmpbulkwalk`` (needs pysnmp, which snmpsim pulls in).

Reported: wall time, device polls/s, CPU ms per poll (netmon: RUSAGE_SELF around the polls;
CLI: RUSAGE_CHILDREN, i.e. the processes it spawned), and the netmon/CLI ratios.

``--latency-ms N`` measures something else: the time of ONE device poll over a slow link. A
user-space UDP proxy on 127.0.0.1 (tests/snmp/delay_proxy.py) sits in front of the agents and
holds every datagram N ms each way (RTT = 2N). Polls run one at a time, ``--latency-reps``
each: the 24-port switch (generic) and the 200-AP controller with netmon walking one column at
a time (``max_walks=1``, as before) and four at once (the default), ``snmpbulkwalk`` of the same
objects and ``snmpbulkget`` as references, and an SNMPv3 authPriv poll of snmpd: one walk at a
time rediscovering the engine id every poll (before), four walks with the engine id discovered
(a device's first poll) and remembered (every later poll). Per poll: mean and min time,
requests, and the round trips that had to happen one after another (the proxy's ``rounds``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # procstat, snmp_exporter

import snmp_exporter  # noqa: E402

from probes.base import Target  # noqa: E402
from probes.snmp import SnmpPoller, SnmpSettings  # noqa: E402
from probes.snmp_client import (  # noqa: E402
    ClientFactory,
    GufoClient,
    SnmpClient,
    TableRead,
    Value,
    open_client,
)
from tests.snmp import extra  # noqa: E402
from tests.snmp.agents import (  # noqa: E402
    COMMUNITY,
    V3_PRIV_USER,
    Agent,
    quiet_env,
    start_snmpd,
    start_snmpsim,
)
from tests.snmp.delay_proxy import DelayProxy, ProxyStats  # noqa: E402

MAX_POLLS = 10_000
MAX_LATENCY_MS = 1000
MAX_LATENCY_REPS = 100
CLI_TIMEOUT = 30.0  # seconds, per CLI process
IF_COLUMNS = [  # what netmon's generic profile walks, as the CLI reads them
    "1.3.6.1.2.1.2.2.1.7", "1.3.6.1.2.1.2.2.1.8", "1.3.6.1.2.1.2.2.1.9",
    "1.3.6.1.2.1.2.2.1.14", "1.3.6.1.2.1.2.2.1.20", "1.3.6.1.2.1.31.1.1.1.1",
    "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.2.1.31.1.1.1.10", "1.3.6.1.2.1.31.1.1.1.15",
]  # fmt: skip
SCALAR_PARENTS = ["1.3.6.1.2.1.1.1", "1.3.6.1.2.1.1.2", "1.3.6.1.2.1.1.3", "1.3.6.1.2.1.1.5"]
IF_WANTED = tuple(f".{oid}." for oid in [*SCALAR_PARENTS, *IF_COLUMNS])  # -On output lines
WLC_COLUMNS = [
    "1.3.6.1.4.1.14179.2.2.1.1.1", "1.3.6.1.4.1.14179.2.2.1.1.3",
    "1.3.6.1.4.1.14179.2.2.1.1.6", "1.3.6.1.4.1.14179.2.2.2.1.15",
]  # fmt: skip


@dataclass(frozen=True)
class Run:
    scenario: str
    tool: str
    polls: int
    wall: float
    cpu: float
    failed: int
    varbinds: int = 0  # objects of the poll's data brought back, all polls (0: not counted)
    requests: int = 0  # SNMP requests sent, all polls (0: not counted)

    @property
    def us_per_varbind(self) -> float:
        return self.cpu / self.varbinds * 1e6 if self.varbinds else 0.0

    @property
    def rate(self) -> float:
        return self.polls / self.wall if self.wall else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.polls * 1000 if self.polls else 0.0


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def bounded(n: int, concurrency: int, job: Callable[[int], Awaitable[bool]]) -> int:
    """Run job(0..n-1) with at most ``concurrency`` at once; return how many failed."""
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bool:
        async with slots:
            return await job(i)

    return sum(not ok for ok in await asyncio.gather(*(one(i) for i in range(n))))


class Counted:
    """A client factory that counts the values every poll's ``read`` brought back.

    ``forget``: each read starts without the layout of the device's last poll (as when the
    answer's shape changed since, e.g. a counter's encoded length: probes/snmp_bulk.py), so
    every answer is decoded and order-checked."""

    def __init__(self, inner: ClientFactory = open_client, forget: bool = False) -> None:
        self.inner, self.varbinds, self.forget = inner, 0, forget

    async def __call__(self, address: str, settings: SnmpSettings) -> SnmpClient:
        client = await self.inner(address, settings)
        read = client.read

        async def counted(
            scalars: Sequence[str], tables: Sequence[TableRead], into: dict[str, Value], walks: int
        ) -> None:
            if self.forget:
                for table in tables:
                    table.layout = None
            try:
                await read(scalars, tables, into, walks)
            finally:
                self.varbinds += len(into) + sum(len(v) for t in tables for v in t.values.values())

        client.read = counted  # type: ignore[method-assign]
        return client


async def gufo_factory(address: str, settings: SnmpSettings) -> SnmpClient:
    """The client before #16: gufo-snmp sessions, one GETBULK walk per column (v2c too)."""
    return GufoClient(address, settings)


async def netmon_run(
    scenario: str, agent: Agent, community: str, profile: str, n: int, concurrency: int,
    before: bool = False, forget: bool = False,
) -> Run:  # fmt: skip
    """n polls of up to 500 devices, ``concurrency`` at once, each device polled twice before
    (a device's steady state: netmon polls it every interval, and from its first poll on knows
    its tables' row counts, from its second the answer's layout). CPU: RUSAGE_SELF around the
    polls, i.e. this process's utime + stime (what /proc/self/stat counts: all its threads),
    where netmon's poller runs; its children are the agents and the other tools, not counted
    here. Not counted: start-up and imports (netmon is a daemon; snmp_exporter's figure is
    also taken around its scrapes only)."""
    counter = Counted(gufo_factory if before else open_client, forget)
    poller = SnmpPoller.from_directory(max_concurrency=concurrency, client_factory=counter)
    settings = SnmpSettings(community=community, port=agent.port, profile=profile, timeout=5.0)
    devices = [Target("bench", f"d{i % 500}", agent.host) for i in range(n)]
    sent = 0

    async def job(i: int) -> bool:
        nonlocal sent
        result = await poller.poll(devices[i], settings)
        sent += result.sent
        return result.ok and result.reason == ""

    for _ in range(2):  # every device polled twice: row counts, then the layout, are learned
        for i in range(min(n, 500)):
            await job(i)
    counter.varbinds, sent = 0, 0
    cpu0, wall0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    failed = await bounded(n, concurrency, job)
    wall = time.perf_counter() - wall0
    tool = f"netmon {profile}" + (" gufo per column (before)" if before else "")
    tool += ", no layout (all decoded)" if forget else ""
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu0
    return Run(scenario, tool, n, wall, cpu, failed, counter.varbinds, sent)


async def cli(args: list[str], env: dict[str, str], wanted: tuple[str, ...] = ()) -> int:
    """Run one CLI command: -1 if it failed, else how many varbinds it printed that are under
    ``wanted`` (0 when nothing is wanted)."""
    out = asyncio.subprocess.PIPE if wanted else asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=out, stderr=asyncio.subprocess.DEVNULL, env=env
    )
    try:
        stdout, _ = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1
    if proc.returncode != 0:
        return -1
    return sum(1 for line in (stdout or b"").decode().splitlines() if line.startswith(wanted))


async def cli_run(
    scenario: str,
    tool: str,
    commands: list[list[str]],
    n: int,
    concurrency: int,
    env: dict[str, str],
    wanted: tuple[str, ...] = (),
) -> Run:
    """n device polls, each running ``commands`` one after another; counts the varbinds of
    the poll's objects (``wanted``) that they printed."""
    varbinds = 0

    async def job(_i: int) -> bool:
        nonlocal varbinds
        counts = [await cli(command, env, wanted) for command in commands]
        varbinds += sum(c for c in counts if c > 0)
        return all(c >= 0 for c in counts)

    cpu0, wall0 = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    failed = await bounded(n, concurrency, job)
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    return Run(scenario, tool, n, wall, cpu, failed, varbinds)


class Endpoint(Protocol):
    """Where a tool sends its requests: an agent, or the delay proxy in front of one."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


def base(tool: str, agent: Endpoint, community: str) -> list[str]:
    return [
        tool,
        "-v2c",
        "-c",
        community,
        "-On",
        "-t",
        "5",
        "-r",
        "0",
        f"{agent.host}:{agent.port}",
    ]


def bulkget(agent: Endpoint, community: str, rows: int) -> list[list[str]]:
    """What netmon's generic poll asks for, in ONE GETBULK: the four scalars as non-repeaters
    (GETNEXT of ``X`` is ``X.0``) and the nine columns, ``rows`` + 1 repetitions."""
    return [[*base("snmpbulkget", agent, community), f"-Cn{len(SCALAR_PARENTS)}",
             f"-Cr{rows + 1}", *SCALAR_PARENTS, *IF_COLUMNS]]  # fmt: skip


def bulkwalk(agent: Endpoint, community: str, subtrees: list[str]) -> list[list[str]]:
    return [[*base("snmpbulkwalk", agent, community), "-Cr40", tree] for tree in subtrees]


async def exporter_run(
    scenario: str, exporter: snmp_exporter.Exporter, module: str, agent: Agent, n: int, c: int
) -> Run:
    """n scrapes of ``module`` for ``agent``, c at once; the exporter's CPU from /proc."""
    varbinds = 0

    async def job(_i: int) -> bool:
        nonlocal varbinds
        ok, samples = await snmp_exporter.scrape(
            exporter.port, module, f"{agent.host}:{agent.port}"
        )
        varbinds += samples
        return ok

    await job(0)  # its first scrape of a module
    varbinds = 0
    cpu0, wall0 = exporter.cpu(), time.perf_counter()
    failed = await bounded(n, c, job)
    wall, cpu = time.perf_counter() - wall0, exporter.cpu() - cpu0
    return Run(scenario, "snmp_exporter (9 walks + GET)", n, wall, cpu, failed, varbinds)


async def device_scenarios(
    sim: Agent, snmpd: Agent, args: argparse.Namespace, env: dict[str, str], work: Path
) -> list[Run]:
    n, c = args.polls, args.concurrency
    walk_trees = ["1.3.6.1.2.1.1", "1.3.6.1.2.1.2.2", "1.3.6.1.2.1.31.1.1.1"]
    runs = []
    modules = {"switch24": "switch-24", "snmpd": COMMUNITY}
    with contextlib.ExitStack() as stack:
        exporter = None
        if snmp_exporter.available():
            exporter = stack.enter_context(
                snmp_exporter.running(work, modules, args.exporter_port, 26)
            )
        for scenario, agent, community, module in (
            ("switch-24", sim, "switch-24", "switch24"),
            ("snmpd", snmpd, COMMUNITY, "snmpd"),
        ):
            runs.append(await netmon_run(scenario, agent, community, "generic", n, c))
            runs.append(await netmon_run(scenario, agent, community, "generic", n, c, forget=True))
            runs.append(await netmon_run(scenario, agent, community, "generic", n, c, True))
            get = bulkget(agent, community, 25)
            runs.append(await cli_run(scenario, "snmpbulkget (1 request)", get, n, c, env,
                                      IF_WANTED))  # fmt: skip
            walks = bulkwalk(agent, community, walk_trees)
            runs.append(await cli_run(scenario, "snmpbulkwalk (system, ifTable, ifXTable)",
                                      walks, n, c, env, IF_WANTED))  # fmt: skip
            if exporter is not None:
                runs.append(await exporter_run(scenario, exporter, module, agent, n, c))
    return runs


async def controller_scenario(sim: Agent, reps: int, env: dict[str, str]) -> list[Run]:
    netmon = await netmon_run("wlc-200", sim, "cisco-wlc", "cisco-wlc", reps, 1)
    walks = bulkwalk(sim, "cisco-wlc", WLC_COLUMNS)
    wanted = tuple(f".{oid}." for oid in WLC_COLUMNS)
    cli_runs = await cli_run("wlc-200", "snmpbulkwalk x4 columns", walks, reps, 1, env, wanted)
    return [netmon, cli_runs]


# -- library comparison (--libs): why gufo-snmp ------------------------------------------------

LIB_GETS, LIB_IN_FLIGHT, LIB_WALKS = 2000, 100, 5
UPTIME, IFTABLE = "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.2.2"


async def gufo_gets(agent: Agent) -> Run:
    from gufo.snmp.aio.client import SnmpSession

    async def job(_i: int) -> bool:
        session = SnmpSession(agent.host, agent.port, community=COMMUNITY, timeout=5)
        return await session.get(UPTIME) is not None

    cpu0, wall0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    failed = await bounded(LIB_GETS, LIB_IN_FLIGHT, job)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
    return Run("lib-get", "gufo-snmp GET", LIB_GETS, wall, cpu, failed)


async def pysnmp_gets(agent: Agent) -> Run:
    from pysnmp.hlapi.v3arch import asyncio as hl

    engine = hl.SnmpEngine()
    target = await hl.UdpTransportTarget.create((agent.host, agent.port), timeout=5, retries=0)

    async def job(_i: int) -> bool:
        oid = hl.ObjectType(hl.ObjectIdentity(UPTIME))
        error, *_ = await hl.get_cmd(
            engine, hl.CommunityData(COMMUNITY), target, hl.ContextData(), oid
        )
        return not error

    cpu0, wall0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    failed = await bounded(LIB_GETS, LIB_IN_FLIGHT, job)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
    engine.close_dispatcher()
    return Run("lib-get", "pysnmp 7 GET", LIB_GETS, wall, cpu, failed)


async def gufo_walks(sim: Agent) -> Run:
    from gufo.snmp.aio.client import SnmpSession

    cpu0, wall0, failed = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter(), 0
    for _ in range(LIB_WALKS):
        session = SnmpSession(sim.host, sim.port, community="bench-49", timeout=5)
        varbinds = [item async for item in session.getbulk(IFTABLE, 25)]
        failed += len(varbinds) != 1078
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
    return Run("lib-walk", "gufo-snmp 1,078-varbind walk", LIB_WALKS, wall, cpu, failed)


async def netmon_walks(sim: Agent) -> Run:
    """The same walk through netmon's own codec and shared socket (probes/snmp_bulk.py)."""
    from probes.snmp_bulk import BulkClient

    settings = SnmpSettings(community="bench-49", port=sim.port, timeout=5.0, max_repetitions=25)
    cpu0, wall0, failed = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter(), 0
    for _ in range(LIB_WALKS):
        client = BulkClient(sim.host, settings)
        varbinds = [item async for item in client.walk(IFTABLE)]
        failed += len(varbinds) != 1078
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
    return Run("lib-walk", "netmon codec 1,078-varbind walk", LIB_WALKS, wall, cpu, failed)


async def pysnmp_walks(sim: Agent) -> Run:
    from pysnmp.hlapi.v3arch import asyncio as hl

    engine = hl.SnmpEngine()
    target = await hl.UdpTransportTarget.create((sim.host, sim.port), timeout=5, retries=0)
    cpu0, wall0, failed = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter(), 0
    for _ in range(LIB_WALKS):
        count = 0
        oid = hl.ObjectType(hl.ObjectIdentity(IFTABLE))
        walk = hl.bulk_walk_cmd(engine, hl.CommunityData("bench-49"), target, hl.ContextData(), 0, 25, oid,
                             lexicographicMode=False)  # fmt: skip
        async for _e, _s, _i, varbinds in walk:
            count += len(varbinds)
        failed += count != 1078
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
    engine.close_dispatcher()
    return Run("lib-walk", "pysnmp 7 1,078-varbind walk", LIB_WALKS, wall, cpu, failed)


async def lib_scenarios(sim: Agent, snmpd: Agent, env: dict[str, str]) -> list[Run]:
    runs = [await gufo_gets(snmpd), await pysnmp_gets(snmpd), await gufo_walks(sim)]
    runs.append(await netmon_walks(sim))
    runs.append(await pysnmp_walks(sim))
    walk = [[*base("snmpbulkwalk", sim, "bench-49"), "-Cr25", IFTABLE]]
    runs.append(await cli_run("lib-walk", "snmpbulkwalk 1,078 varbinds", walk, LIB_WALKS, 1, env))
    return runs


def table(runs: list[Run]) -> str:
    lines = [f"{'scenario':<10} {'tool':<42} {'polls':>6} {'wall s':>7} {'polls/s':>8} "
             f"{'CPU ms/poll':>11} {'vb/poll':>7} {'CPU us/vb':>9} {'req/poll':>8} "
             f"{'failed':>6}"]  # fmt: skip
    for r in runs:
        vb = f"{r.varbinds / r.polls:.0f}" if r.varbinds else "-"
        us = f"{r.us_per_varbind:.2f}" if r.varbinds else "-"
        req = f"{r.requests / r.polls:.2f}" if r.requests else "-"
        lines.append(f"{r.scenario:<10} {r.tool:<42} {r.polls:>6} {r.wall:>7.2f} {r.rate:>8.1f} "
                     f"{r.cpu_ms:>11.3f} {vb:>7} {us:>9} {req:>8} {r.failed:>6}")  # fmt: skip
    return "\n".join(lines)


def ratios(runs: list[Run]) -> str:
    lines = []
    for scenario in dict.fromkeys(r.scenario for r in runs):
        group = [r for r in runs if r.scenario == scenario]
        ours = group[0]
        for other in group[1:]:
            per_vb = (
                f", {ours.us_per_varbind / other.us_per_varbind:.2f}x CPU per varbind"
                if ours.varbinds and other.varbinds
                else ""
            )
            lines.append(
                f"{scenario}: {ours.tool} vs {other.tool}: {ours.rate / other.rate:.2f}x polls/s, "
                f"{ours.cpu_ms / other.cpu_ms:.2f}x CPU per poll{per_vb}"
            )
    return "\n".join(lines)


# -- one poll over a slow link (--latency-ms) --------------------------------------------------


@dataclass(frozen=True)
class LatencyRun:
    scenario: str
    tool: str
    ms: list[float]  # per poll
    requests: list[int]  # per poll, as the proxy forwarded them
    rounds: list[int]  # per poll: round trips that had to happen one after another
    failed: int

    def row(self) -> str:
        n = len(self.ms) or 1
        mean_ms, min_ms = sum(self.ms) / n, min(self.ms, default=0.0)
        return (f"{self.scenario:<10} {self.tool:<44} {mean_ms:>8.0f} {min_ms:>7.0f} "
                f"{sum(self.requests) / n:>9.1f} {max(self.rounds, default=0):>7} "
                f"{self.failed:>6}")  # fmt: skip


async def timed(
    scenario: str, tool: str, proxy: DelayProxy, reps: int, poll: Callable[[], Awaitable[bool]]
) -> LatencyRun:
    """``reps`` polls one after another, each timed and counted at the proxy on its own."""
    ms, requests, rounds, failed = [], [], [], 0
    for _ in range(reps):
        proxy.stats = ProxyStats()
        t0 = time.perf_counter()
        failed += not await poll()
        ms.append((time.perf_counter() - t0) * 1000)
        requests.append(proxy.stats.requests)
        rounds.append(proxy.stats.rounds)
    return LatencyRun(scenario, tool, ms, requests, rounds, failed)


def netmon_poll(
    proxy: DelayProxy,
    settings: SnmpSettings,
    fresh: bool = False,
    factory: ClientFactory = open_client,
) -> Callable[[], Awaitable[bool]]:
    """One device poll through ``proxy``; ``fresh``: a new poller each time (nothing kept)."""
    shared = SnmpPoller.from_directory(client_factory=factory)
    device = Target("bench", "device-1", proxy.host)

    async def poll() -> bool:
        poller = SnmpPoller.from_directory(client_factory=factory) if fresh else shared
        result = await poller.poll(device, settings)
        return result.ok and bool(extra(result)["complete"])

    return poll


def cli_poll(commands: list[list[str]], env: dict[str, str]) -> Callable[[], Awaitable[bool]]:
    async def poll() -> bool:
        return all([await cli(command, env) >= 0 for command in commands])

    return poll


async def latency_scenarios(
    sim: Agent, snmpd: Agent, delay_ms: int, reps: int, env: dict[str, str]
) -> list[LatencyRun]:
    runs: list[LatencyRun] = []
    delay, lifetime = delay_ms / 1000, 600.0
    devices = (("switch-24", "switch-24", "generic"), ("wlc-200", "cisco-wlc", "cisco-wlc"))
    for scenario, community, profile in devices:
        async with DelayProxy((sim.host, sim.port), delay, lifetime=lifetime) as proxy:
            settings = SnmpSettings(community=community, port=proxy.port, profile=profile,
                                    timeout=5.0, max_walks=4)  # fmt: skip
            for factory, tool in (
                (gufo_factory, f"netmon {profile}, gufo per column x4 (before)"),
                (open_client, f"netmon {profile}, multi-column GETBULK"),
            ):
                poll = netmon_poll(proxy, settings, factory=factory)
                runs.append(await timed(scenario, tool, proxy, reps, poll))
            if profile == "generic":
                get = bulkget(proxy, community, 25)
                runs.append(await timed(scenario, "snmpbulkget (1 request)", proxy, reps,
                                        cli_poll(get, env)))  # fmt: skip
                walks_cli = bulkwalk(proxy, community, ["1.3.6.1.2.1.1.3", *IF_COLUMNS])
                tool = "snmpbulkwalk x10 (same objects, in turn)"
            else:
                walks_cli = bulkwalk(proxy, community, WLC_COLUMNS)
                tool = "snmpbulkwalk x4 AP columns"
            runs.append(await timed(scenario, tool, proxy, reps, cli_poll(walks_cli, env)))
    user, auth_proto, auth_key, priv_proto, priv_key = V3_PRIV_USER
    async with DelayProxy((snmpd.host, snmpd.port), delay, lifetime=lifetime) as proxy:
        for walks, fresh, tool in (
            (1, True, "netmon v3 max_walks=1, rediscover (before)"),
            (4, True, "netmon v3 max_walks=4, first poll"),
            (4, False, "netmon v3 max_walks=4, engine id kept"),
        ):
            settings = SnmpSettings(
                version="3", user=user, auth_protocol=auth_proto, auth_key=auth_key,
                priv_protocol=priv_proto, priv_key=priv_key, port=proxy.port, timeout=5.0,
                max_walks=walks,
            )  # fmt: skip
            poll = netmon_poll(proxy, settings, fresh=fresh)
            if not fresh:
                await poll()  # the device's first poll: discovers the engine id
            runs.append(await timed("snmpd-v3", tool, proxy, reps, poll))
    return runs


def latency_table(runs: list[LatencyRun], delay_ms: int, reps: int) -> str:
    lines = [
        f"one device poll at a time through a UDP delay proxy: {delay_ms} ms each way "
        f"(RTT {2 * delay_ms} ms), {reps} polls each",
        f"{'scenario':<10} {'tool':<44} {'ms/poll':>8} {'min ms':>7} {'requests':>9} "
        f"{'rounds':>7} {'failed':>6}",
    ]
    lines += [run.row() for run in runs]
    lines.append("")
    for scenario in dict.fromkeys(r.scenario for r in runs):
        netmon = [r for r in runs if r.scenario == scenario and r.tool.startswith("netmon")]
        before, after = netmon[0], netmon[-1]
        lines.append(
            f"{scenario}: {after.tool} vs {before.tool}: "
            f"{sum(before.ms) / sum(after.ms):.2f}x faster"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def local_agents(max_varbinds: int) -> Iterator[tuple[Agent, Agent, dict[str, str], Path]]:
    """snmpsim and snmpd on loopback, an environment for the net-snmp CLI and a work folder;
    always stopped."""
    with tempfile.TemporaryDirectory(prefix="netmon-bench-snmp-") as tmp:
        work = Path(tmp)
        sim_agent = start_snmpsim(work / "snmpsim", max_varbinds=max_varbinds)
        with sim_agent as sim, start_snmpd(work / "snmpd") as snmpd:
            (work / "cli").mkdir()
            yield sim, snmpd, quiet_env(work / "cli"), work


async def latency_main(args: argparse.Namespace) -> None:
    with local_agents(args.sim_max_varbinds) as (sim, snmpd, env, _work):
        runs = await latency_scenarios(sim, snmpd, args.latency_ms, args.latency_reps, env)
    print(latency_table(runs, args.latency_ms, args.latency_reps))


async def main(args: argparse.Namespace) -> None:
    if args.latency_ms is not None:
        await latency_main(args)
        return
    with local_agents(args.sim_max_varbinds) as (sim, snmpd, env, work):
        runs = await device_scenarios(sim, snmpd, args, env, work)
        runs += await controller_scenario(sim, args.controller_reps, env)
        if args.libs:
            runs += await lib_scenarios(sim, snmpd, env)
    print(f"snmpsim answers at most {args.sim_max_varbinds} varbinds per GETBULK; "
          f"{args.polls} polls, {args.concurrency} in flight")  # fmt: skip
    if not snmp_exporter.available():
        print("snmp_exporter: not installed (apt-get install prometheus-snmp-exporter)")
    print(table(runs))
    print()
    print(ratios(runs))
    wlc = [r for r in runs if r.scenario == "wlc-200"]
    print(f"\n200-AP controller, full read: netmon {wlc[0].wall / wlc[0].polls * 1000:.0f} ms, "
          f"snmpbulkwalk x4 {wlc[1].wall / wlc[1].polls * 1000:.0f} ms (mean of "
          f"{args.controller_reps}, sequential)")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=300, help="device polls per tool")
    parser.add_argument("--concurrency", type=int, default=20, help="polls in flight")
    parser.add_argument("--controller-reps", type=int, default=5, help="200-AP reads per tool")
    parser.add_argument(
        "--libs", action="store_true", help="also compare gufo-snmp, pysnmp and the CLI"
    )
    parser.add_argument(
        "--latency-ms",
        type=int,
        metavar="N",
        help="instead: time single polls through a proxy delaying each datagram N ms each way",
    )
    parser.add_argument(
        "--latency-reps", type=int, default=5, help="polls per tool with --latency-ms"
    )
    parser.add_argument(
        "--sim-max-varbinds", type=int, default=300,
        help="snmpsim's cap on varbinds per GETBULK answer (its own default: 64)",
    )  # fmt: skip
    parser.add_argument(
        "--exporter-port", type=int, default=21100, help="snmp_exporter's port on 127.0.0.1"
    )
    args = parser.parse_args()
    if not 1 <= args.polls <= MAX_POLLS or args.concurrency < 1 or args.controller_reps < 1:
        parser.error(
            f"need 1 <= --polls <= {MAX_POLLS}, --concurrency >= 1, --controller-reps >= 1"
        )
    if args.latency_ms is not None and not (
        0 <= args.latency_ms <= MAX_LATENCY_MS and 1 <= args.latency_reps <= MAX_LATENCY_REPS
    ):
        parser.error(
            f"need 0 <= --latency-ms <= {MAX_LATENCY_MS}, 1 <= --latency-reps <= {MAX_LATENCY_REPS}"
        )
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

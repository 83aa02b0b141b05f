"""The scheduler: stable spread of start times, reload without reset, overruns reported."""

from __future__ import annotations

import asyncio

import pytest

from netmon.scheduler import Job, Scheduler


async def _noop(_job: Job) -> None:
    return None


async def test_start_times_spread_over_the_interval() -> None:
    sched = Scheduler(_noop, clock=lambda: 1000.0)
    sched.update([Job(("site", f"dev-{i}", "icmp"), 60.0) for i in range(1000)])
    offsets = sorted(j.next_due - 1000.0 for j in sched.jobs.values())
    assert offsets[0] >= 0 and offsets[-1] < 60.0
    per_second = [sum(1 for o in offsets if s <= o < s + 1) for s in range(60)]
    assert max(per_second) < 40  # ~17 expected per second; nothing near 1000 at once


async def test_reload_keeps_existing_timelines() -> None:
    now = [1000.0]
    sched = Scheduler(_noop, clock=lambda: now[0])
    sched.update([Job(("a", "wan", "icmp"), 60.0), Job(("b", "wan", "icmp"), 60.0)])
    before = {k: j.next_due for k, j in sched.jobs.items()}
    now[0] = 1017.0
    sched.update([Job(("a", "wan", "icmp"), 60.0), Job(("c", "wan", "icmp"), 60.0)])
    assert sched.jobs[("a", "wan", "icmp")].next_due == before[("a", "wan", "icmp")]
    assert ("b", "wan", "icmp") not in sched.jobs
    assert ("c", "wan", "icmp") in sched.jobs


async def test_jobs_run_repeatedly_and_overruns_are_counted() -> None:
    release = asyncio.Event()
    runs: dict[str, int] = {"fast": 0, "stuck": 0}

    async def run(job: Job) -> None:
        runs[str(job.key)] += 1
        if job.key == "stuck":
            await release.wait()

    sched = Scheduler(run)
    sched.update([Job("fast", 0.02), Job("stuck", 0.02)])
    task = asyncio.create_task(sched.run_forever())
    for _ in range(400):  # bounded: until both conditions hold
        await asyncio.sleep(0.01)
        if runs["fast"] >= 5 and sched.overruns >= 3:
            break
    assert runs["fast"] >= 5
    assert sched.overruns >= 3 and runs["stuck"] == 1  # late, not started twice at once
    release.set()
    for _ in range(400):
        await asyncio.sleep(0.01)
        if runs["stuck"] >= 2:
            break
    assert runs["stuck"] >= 2  # resumed after the overrun
    task.cancel()
    await sched.stop()


async def test_monitor_reload_keeps_evidence_of_devices_that_stay(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from netmon.inventory import parse_inventory
    from netmon.monitor import Monitor
    from netmon.store import Store
    from probes.base import Engines, ProbeResult
    from tests.conftest import FakeClock

    site = "  - {{id: {id}, name: X, district: Ranchi, type: chc, devices: [{devs}]}}\n"
    wan = "{name: wan-1, role: wan, address: 127.80.1.%d}"
    first = parse_inventory(
        "sites:\n" + site.format(id="a", devs=wan % 1) + site.format(id="b", devs=wan % 2)
    )
    second = parse_inventory(
        "sites:\n" + site.format(id="a", devs=wan % 1) + site.format(id="c", devs=wan % 3)
    )
    clock = FakeClock()
    m = Monitor(first, Store(f"sqlite:///{tmp_path / 'r.db'}"), Engines(), clock)
    scheduler = m.poller.poller.scheduler  # type: ignore[attr-defined]
    m.poller.poller.assign(first)  # type: ignore[attr-defined]
    due = scheduler.jobs[("a", "wan-1", "icmp")].next_due
    m.record("a", "wan-1", ProbeResult("icmp", True, clock.now, 0.1, 5, 5, (0.001,) * 5))
    m.evaluate()
    await m.reload(second)
    assert m.evidence[("a", "wan-1", "icmp")].summary(clock.now).probes == 1
    assert ("b", "wan-1", "icmp") not in m.evidence and ("c", "wan-1", "icmp") in m.evidence
    assert scheduler.jobs[("a", "wan-1", "icmp")].next_due == due
    assert ("b", "wan-1", "icmp") not in scheduler.jobs and ("c", "wan-1", "icmp") in scheduler.jobs
    assert set(m.status) == {"a", "c"}
    assert m.status["a"].verdict == "fully_functional"


def test_the_scheduler_and_the_icmp_sender_wake_on_one_grid() -> None:
    """Both round their wake-ups down to multiples of one step, so under steady load they wake
    in the same loop iteration (a job started early is within the step; see the constants)."""
    from netmon import scheduler
    from probes import icmp_engine

    assert scheduler.FIRE_AHEAD == icmp_engine._SEND_AHEAD == 0.02
    assert scheduler._on_grid(10.05, 10.0) == pytest.approx(10.04)  # the last tick before it
    assert scheduler._on_grid(10.015, 10.0) == 10.015  # that tick has passed: the due time

"""The write-ahead journal (issue 11, item 3): a kill -9 during a database outage loses at most
the last second; a torn or corrupt journal is repaired, never a crash; a replay adds nothing
twice; netmon starts and probes while PostgreSQL is down.

The unit tests use real files and real databases (SQLite, PostgreSQL); the drills a real
``netmon run`` (poller process, ICMP on loopback) against a PostgreSQL instance of this
module's own, stopped and started with pg_ctl, and a real SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from netmon.journal import Journal, encode
from netmon.store import Store
from tests.netmon_process import running_netmon, stop
from tests.pg_instance import PgInstance, pg_instance
from tests.test_e2e import wait_for
from tests.test_store import T0, closed_port, result

__all__ = ["pg_instance"]  # the fixture used here
ROOT = Path(__file__).resolve().parents[1]


def dead_store(directory: Path, **journal: Any) -> Store:
    """A store whose database is never there, journaling into ``directory``."""
    url = f"postgresql+psycopg://netmon@127.0.0.1:{closed_port()}/netmon?connect_timeout=1"
    return Store(url, journal=Journal(directory, **journal))


def take(store: Store, n: int, first: float = T0) -> None:
    for i in range(n):
        store.add_result("dh-ranchi", "wan-1", result(first + i))


def stored(store: Store) -> list[float]:
    return sorted(r.started_at for _, _, r in store.results_since(0))


def reopen(directory: Path, database_url: str) -> Store:
    store = Store(database_url, journal=Journal(directory))
    store.migrate()
    return store


def test_journaled_rows_come_back_after_a_kill_and_are_stored_once(
    tmp_path: Path, database_url: str
) -> None:
    journal = tmp_path / "journal"
    dead = dead_store(journal, segment_bytes=2048)  # a few rows per segment: many rotations
    dead.open_journal()
    assert dead.journal is not None
    for second in range(10):  # ten syncs of ten rows, a segment rotated after each
        take(dead, 10, T0 + 10 * second)
        assert dead.journal.sync() == 10
    assert len(list(journal.iterdir())) == 11
    # killed here, nothing closed; but the first 30 rows had reached the database, their
    # COMMIT's reply lost (or killed between the commit and the segment's removal)
    committed = Store(database_url)
    committed.migrate()
    take(committed, 30)
    committed.flush()
    store = reopen(journal, database_url)
    assert store.open_journal() == 100
    assert store.flush() == 100
    assert stored(store) == [T0 + i for i in range(100)]  # each once
    assert len(list(journal.iterdir())) == 1  # the replayed segments removed once committed
    store.close()  # a clean stop with everything committed leaves no journal
    assert list(journal.iterdir()) == []
    committed.close()


def test_a_torn_tail_is_truncated_wherever_the_write_was_cut(tmp_path: Path) -> None:
    dead = dead_store(tmp_path / "whole")
    dead.open_journal()
    take(dead, 10)
    dead.close()
    (segment,) = (tmp_path / "whole").iterdir()
    whole = segment.read_bytes()
    last = whole.rindex(b"\n", 0, len(whole) - 1) + 1  # where the tenth row's line starts
    torn = tmp_path / "torn"
    cuts = range(last + 1, len(whole))  # cut after each byte of the last line but its newline
    journal = Journal(torn)
    for cut in cuts:
        torn.mkdir(exist_ok=True)
        (torn / segment.name).write_bytes(whole[:cut])
        journal = Journal(torn)
        store = Store("sqlite://", journal=journal)
        assert store.open_journal() == 9
        assert journal.torn == 1 and journal.corrupt == 0
        assert (torn / segment.name).read_bytes() == whole[:last]  # truncated to whole lines
        assert [row["ts"] for _, row in store.pending] == [T0 + i for i in range(9)]
        journal.close()
        for path in torn.iterdir():
            path.unlink()
    assert len(cuts) > 100


def test_corrupt_lines_are_skipped_and_counted(tmp_path: Path, database_url: str) -> None:
    row = {"site_id": "s", "device": "d", "kind": "icmp", "ts": T0, "duration": 0.1, "ok": True,
           "sent": 1, "received": 1, "rtts": "[]", "reason": "", "extra": ""}  # fmt: skip
    good = [encode("probe_result", {**row, "ts": T0 + i}) for i in range(3)]
    flipped = bytearray(good[1])
    flipped[20] ^= 0x01  # a bit flipped on disk: the CRC no longer matches
    bad = [
        bytes(flipped), b"not a journal line\n", b"\xff\xfe\n",
        encode("schema_version", {"version": 9}),  # a CRC-valid line no table takes
        encode("probe_result", {**row, "sent": True}),  # a row the database would refuse
    ]  # fmt: skip
    tmp_path.joinpath("journal-00000000000000000000.log").write_bytes(
        good[0] + b"".join(bad) + good[2]
    )
    store = reopen(tmp_path, database_url)
    assert store.open_journal() == 2
    assert store.journal is not None
    assert (store.journal.corrupt, store.journal.torn) == (len(bad), 0)
    assert store.flush() == 2
    assert stored(store) == [T0, T0 + 2]
    store.close()


FULL_DISK = """
import logging, resource, signal, sys
from pathlib import Path
from tests.test_journal import dead_store, take

logging.basicConfig(level=logging.ERROR)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
store = dead_store(Path(sys.argv[1]), segment_bytes=1 << 20)
store.open_journal()
take(store, 200)
assert store.journal.sync() == 0 and store.journal.failing
assert len(store.pending) == 200  # still queued in memory
print(store.journal.last_error)
"""


def test_a_full_disk_is_flagged_and_the_rows_before_it_recovered(
    tmp_path: Path, database_url: str
) -> None:
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "File too large" in proc.stdout and "cannot write 200 rows" in proc.stderr
    assert "Traceback" not in proc.stderr
    sizes = sorted(p.stat().st_size for p in tmp_path.iterdir())
    assert 4096 in sizes  # the segment the disk filled
    store = reopen(tmp_path, database_url)
    complete = store.open_journal()
    assert 0 < complete < 200 and store.journal is not None and store.journal.torn == 1
    store.flush()
    assert stored(store) == [T0 + i for i in range(complete)]
    store.close()


def test_the_journal_is_bounded_and_counts_what_it_drops(tmp_path: Path) -> None:
    dead = dead_store(tmp_path, segment_bytes=4096, max_bytes=16384)
    dead.open_journal()
    journal = dead.journal
    assert journal is not None
    for batch in range(20):
        take(dead, 20, T0 + 20 * batch)
        journal.sync()
    assert journal.size <= 16384 + 4096 + 2048  # the bound, one segment and one batch over
    assert journal.dropped > 0
    assert journal.dropped + journal.backlog == 400  # every row on disk or counted as dropped
    assert len(dead.pending) == 400  # memory has its own bound
    dead.close()


# --- drills with a real netmon and a real PostgreSQL -------------------------------------------
DEVICES = 4
INVENTORY = """
state: Jharkhand
defaults: {interval: 1s, count: 1, timeout: 500ms, spacing: 100ms}
sites:
  - id: chc-journal
    name: Community Health Centre, Journal
    district: Ranchi
    type: chc
    devices:
      - {name: wan-1, role: wan, address: 127.77.1.1}
""" + "".join(
    f"      - {{name: ap-{i}, role: ap, address: 127.77.6.{i}, parent: wan-1}}\n"
    for i in range(1, DEVICES)
)


@pytest.fixture
def pg(pg_instance: PgInstance) -> Iterator[PgInstance]:
    """The module's instance, running, with no netmon tables."""
    engine = create_engine(pg_instance.url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS probe_result, verdict_change, schema_version"))
    engine.dispose()
    yield pg_instance
    if not (pg_instance.data / "postmaster.pid").exists():
        pg_instance.up()


def health(port: int) -> dict[str, Any]:
    return dict(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json())


def journaled(port: int, at_least: int) -> bool:
    journal = health(port)["store"]["journal"]
    return bool(journal is not None and journal["backlog"] >= at_least)


def stored_results(url: str) -> dict[str, list[float]]:
    """Each device's stored start times, in order; asserts no (device, kind, ts) twice."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device, ts FROM probe_result ORDER BY ts")).all()
    engine.dispose()
    out: dict[str, list[float]] = {}
    for device, ts in rows:
        out.setdefault(device, []).append(ts)
    assert all(len(set(v)) == len(v) for v in out.values())
    return out


def gaps(times: list[float], start: float, end: float) -> list[tuple[float, float]]:
    """Gaps over 2.5 probe intervals between ``start`` and ``end`` (results lost)."""
    inside = [t for t in times if start <= t <= end]
    edges = [start, *inside, end]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b - a > 2.5]


def test_kill_9_during_a_database_outage_loses_at_most_the_last_second(
    tmp_path: Path, pg: PgInstance
) -> None:
    with running_netmon(tmp_path, INVENTORY, pg.url) as (port, proc):
        wait_for(lambda: sum(map(len, stored_results(pg.url).values())) >= DEVICES)
        pg.down()
        outage = time.time()
        wait_for(lambda: journaled(port, 8 * DEVICES))  # ~8 s of results taken meanwhile
        assert health(port)["status"] == "degraded"
        proc.send_signal(signal.SIGKILL)
        killed = time.time()
        proc.wait(10)
    pg.up()
    with running_netmon(tmp_path, INVENTORY, pg.url) as (port, proc):
        # ready: the journal's rows were written before the first verdicts (Monitor.start)
        assert stop(proc) == 0
    log = (tmp_path / "netmon.log").read_text()
    assert "rows of an earlier run not yet in the database, re-queued" in log
    assert "Traceback" not in log
    results = stored_results(pg.url)
    assert len(results) == DEVICES
    for device, times in results.items():
        first = min(times)
        assert first < outage
        # every interval before the kill is stored, up to its last ~2 s (the unsynced second)
        assert gaps(times, first, killed - 2.0) == [], device


def test_netmon_starts_and_probes_while_postgresql_is_down(tmp_path: Path, pg: PgInstance) -> None:
    pg.down()
    with running_netmon(tmp_path, INVENTORY, pg.url, ready=("degraded",)) as (port, proc):
        started = time.time()
        wait_for(lambda: journaled(port, 5 * DEVICES))
        assert health(port)["store"]["errors"] > 0
        pg.up()
        wait_for(lambda: health(port)["status"] == "ok")
        wait_for(lambda: health(port)["store"]["journal"]["backlog"] <= 2 * DEVICES)
        back = time.time()
        assert stop(proc) == 0
    log = (tmp_path / "netmon.log").read_text()
    assert "starting anyway; results are journaled until it answers" in log
    assert "Traceback" not in log
    for device, times in stored_results(pg.url).items():
        assert min(times) < started + 2.5, device  # the outage's results were kept
        assert gaps(times, min(times), back - 2.0) == [], device


def test_netmon_starts_on_a_torn_journal(tmp_path: Path) -> None:
    """A real ``netmon run`` on a journal whose segment a kill cut mid-line: the whole rows are
    written, the torn line truncated with one warning, a second start writes nothing again."""
    dead = dead_store(tmp_path / "journal")
    dead.open_journal()
    take(dead, 10)
    assert dead.journal is not None
    dead.journal.sync()
    (segment,) = (tmp_path / "journal").iterdir()
    with segment.open("ab") as f:
        f.write(encode("probe_result", dict(dead.pending[0][1], ts=T0 + 99))[:40])
    for start in range(2):
        with running_netmon(tmp_path) as (port, proc):
            assert health(port)["store"]["journal"]["torn"] == 1 - start
            assert stop(proc) == 0
        assert stored_results(f"sqlite:///{tmp_path / 'netmon.db'}") == {
            "wan-1": [T0 + i for i in range(10)]
        }
        assert list((tmp_path / "journal").iterdir()) == []  # all committed: nothing left
    log = (tmp_path / "netmon.log").read_text()
    assert log.count("torn tail of 40 bytes truncated") == 1
    assert "Traceback" not in log

"""Spill files of a netmon before the journal (issue 11, item 2): loaded once, a torn or
corrupt line skipped and counted -- never a failed start, never a row written twice.

The drill: a spill cut short (a kill or a full disk during the old, non-atomic ``spill()``)
made every start exit 1 with ``JSONDecodeError`` after writing the valid rows again (30 rows for
10 after three starts). netmon no longer spills (the journal, tests/test_journal.py, holds the
queue all along), but an upgrade may find such files: a real ``netmon run`` starts twice on a
torn one.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from netmon.store import Store, VerdictChange
from tests.netmon_process import running_netmon, stop
from tests.test_store import T0, closed_port, result

ROOT = Path(__file__).resolve().parents[1]


def dead_store() -> Store:
    return Store(f"sqlite:////proc/netmon-no-such-dir/{closed_port()}.db")  # never opened


def spill_rows(directory: Path, n: int) -> Path:
    """A spill of ``n`` results and one verdict change, as an older netmon's shutdown made it
    with a dead database: one ``{"table": …, "row": …}`` JSON object per line."""
    dead = dead_store()
    for i in range(n):
        dead.add_result("dh-ranchi", "wan-1", result(T0 + i))
    dead.add_verdict_change(VerdictChange("dh-ranchi", "down", T0, [{"criterion": "uplink_down"}]))
    directory.mkdir(parents=True)
    path = directory / "spill-1.jsonl"
    with path.open("w") as out:
        for table, row in dead.pending:
            row = {k: v for k, v in row.items() if k != "changed_at"}  # not in schema v2
            out.write(json.dumps({"table": table, "row": row}) + "\n")
    dead.close()
    return path


def stored(store: Store) -> list[float]:
    return [r.started_at for _, _, r in store.results_since(0)]


def test_a_spill_is_loaded_once(tmp_path: Path, database_url: str) -> None:
    spill = spill_rows(tmp_path / "spill", 50)
    store = Store(database_url)
    store.migrate()
    assert store.load_spills(spill.parent) == 51
    assert not spill.exists()
    assert store.written == 0 and len(store.pending) == 51
    assert store.load_spills(spill.parent) == 0
    store.flush()
    assert store.load_spills(spill.parent) == 0
    assert stored(store) == [T0 + i for i in range(50)]
    assert store.latest_verdicts()["dh-ranchi"].verdict == "down"
    assert store.spill_skipped == 0
    store.close()


def test_a_torn_last_line_is_skipped_wherever_it_was_cut(tmp_path: Path) -> None:
    whole = spill_rows(tmp_path / "whole", 10).read_bytes()
    last = whole.rindex(b"\n", 0, len(whole) - 1) + 1  # where the last line (the verdict) starts
    store = dead_store()
    directory = tmp_path / "torn"
    directory.mkdir()
    cuts = range(last + 1, len(whole) - 1)  # the last line cut after each of its bytes but its }
    for cut in cuts:
        (directory / "spill-1.jsonl").write_bytes(whole[:cut])
        assert store.load_spills(directory) == 10  # the ten complete results, never the torn one
        assert not list(directory.iterdir())
    assert store.spill_skipped == len(cuts) > 100
    assert [row["ts"] for _, row in store.pending] == [T0 + i for i in range(10)] * len(cuts)


def test_corrupt_lines_are_skipped_and_the_rest_is_written(
    tmp_path: Path, database_url: str
) -> None:
    good = spill_rows(tmp_path / "good", 3).read_bytes().splitlines()
    row = json.loads(good[0])["row"]

    def probe(**change: object) -> bytes:
        return json.dumps({"table": "probe_result", "row": {**row, **change}}).encode()

    bad = [
        b"\xff\xfe not utf-8", b"", b"{}", b"[1, 2]", b'"row"', b'{"table": "probe_result"}',
        b'{"table": ["probe_result"], "row": {}}', b'{"table": "schema_version", "row": {"version": 9}}',
        probe(ts="yesterday"), probe(sent=True), probe(ok=1), probe(site_id="x" * 65),
        probe(device=None), probe(id=7), probe(colour="red"),
        json.dumps({"table": "verdict_change", "row": {"site_id": "a", "verdict": "down"}}).encode(),
    ]  # fmt: skip
    old = {k: v for k, v in row.items() if k != "extra"}  # a spill from before schema v2: taken
    lines = [good[0], *bad[:8], good[1], *bad[8:], good[2], good[3], json.dumps(
        {"table": "probe_result", "row": {**old, "ts": T0 + 99}}).encode()]  # fmt: skip
    directory = tmp_path / "spill"
    directory.mkdir()
    (directory / "spill-1.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    store = Store(database_url)
    store.migrate()
    assert store.load_spills(directory) == 5
    assert store.spill_skipped == len(bad)
    assert store.flush() == 5  # nothing queued that the database refuses
    assert stored(store) == [T0, T0 + 1, T0 + 2, T0 + 99]
    store.close()


def test_netmon_starts_on_a_torn_spill_and_writes_its_rows_once(tmp_path: Path) -> None:
    """The drill with real processes: 10 rows and a torn line in the spill folder; netmon
    starts, writes the 10, stops cleanly; a second start writes nothing again."""
    whole = spill_rows(tmp_path / "spill", 10).read_bytes()
    torn = whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 1] + b'{"table": "probe_res'
    (spill,) = (tmp_path / "spill").iterdir()
    spill.write_bytes(torn)  # what the old spill() left after a kill midway through its last line
    for start in range(2):
        with running_netmon(tmp_path) as (_port, proc):
            assert stop(proc) == 0
        with sqlite3.connect(tmp_path / "netmon.db") as conn:
            rows = conn.execute("SELECT ts FROM probe_result ORDER BY ts").fetchall()
            verdicts = conn.execute("SELECT COUNT(*) FROM verdict_change").fetchone()[0]
        assert [ts for (ts,) in rows] == [T0 + i for i in range(10)], start
        assert verdicts == 0  # the torn line was the verdict change
        assert not list((tmp_path / "spill").iterdir())
    log = (tmp_path / "netmon.log").read_text()
    assert "1 torn or corrupt lines skipped, 10 rows queued" in log
    assert log.count("queued 10 rows saved by an earlier run") == 1
    assert "Traceback" not in log

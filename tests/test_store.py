"""The store on embedded SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import inspect

from netmon.errors import StoreError
from netmon.store import Store, VerdictChange, make_engine
from probes.base import ProbeResult
from probes.snmp_findings import AccessPoint, SnmpFindings

T0 = 1_800_000_000.0


def result(ts: float, received: int = 5) -> ProbeResult:
    rtts = tuple(0.001 * (i + 1) for i in range(received))
    return ProbeResult(
        "icmp", received > 0, ts, 0.4, 5, received, rtts, "" if received else "no reply"
    )


def test_round_trip_and_batches(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    store.migrate()  # idempotent
    for i in range(12_000):
        store.add_result("dh-ranchi", f"ap-{i % 40}", result(T0 + i, received=i % 6))
    assert store.flush(batch_size=5000) == 12_000
    assert store.written == 12_000 and not store.pending
    got = list(store.results_since(T0 + 11_990))
    assert [r.started_at for _, _, r in got] == [T0 + i for i in range(11_990, 12_000)]
    site, device, r = got[-1]
    assert (site, device) == ("dh-ranchi", "ap-39")
    assert r == result(T0 + 11_999, received=11_999 % 6)
    assert ("dh-ranchi", "ap-0", "icmp") in store.devices_ever_up()
    rows = store.results("dh-ranchi", "ap-1", since=T0, limit=3)
    assert [row.ts for row in rows] == [T0 + 11_961, T0 + 11_921, T0 + 11_881]
    assert store.prune(before=T0 + 6000) == 6000
    store.close()


def test_verdict_changes(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    reasons = [{"criterion": "uplink_down", "message": "wan wan-1 unreachable"}]
    store.add_verdict_change(VerdictChange("a", "fully_functional", T0, []))
    store.add_verdict_change(VerdictChange("a", "down", T0 + 60, reasons))
    store.add_verdict_change(VerdictChange("b", "degraded", T0 + 5, []))
    store.flush()
    latest = store.latest_verdicts()
    assert latest["a"] == VerdictChange("a", "down", T0 + 60, reasons)
    assert latest["b"].verdict == "degraded"
    assert [c.verdict for c in store.verdict_history("a")] == ["down", "fully_functional"]
    store.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dead_database_loses_nothing_taken(database_url: str) -> None:
    """Writes to a dead database fail loudly, keep every row queued, and land once it is back."""
    dead = Store(f"postgresql+psycopg://netmon@127.0.0.1:{closed_port()}/netmon?connect_timeout=2")
    for i in range(100):
        dead.add_result("s", "wan-1", result(T0 + i))
    with pytest.raises(StoreError, match="writing 100 rows failed"):
        dead.flush()
    assert len(dead.pending) == 100 and dead.errors == 1 and dead.written == 0
    dead.engine.dispose()
    dead.engine = make_engine(database_url)  # the database comes back
    dead.migrate()
    assert dead.flush() == 100
    assert len(list(dead.results_since(0))) == 100
    dead.close()


def test_backlog_is_bounded_and_counts_drops() -> None:
    store = Store("sqlite://", max_pending=10)
    for i in range(15):
        store.add_result("s", "d", result(T0 + i))
    assert len(store.pending) == 10 and store.dropped == 5
    assert store.pending[0][1]["ts"] == T0 + 5  # the oldest went first


def test_schema_is_created_with_indexes(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    insp = inspect(store.engine)
    assert {"probe_result", "verdict_change", "schema_version"} <= set(insp.get_table_names())
    names = {ix["name"] for ix in insp.get_indexes("probe_result")}
    assert "ix_probe_result_site_device_ts" in names
    store.close()


def test_refuses_newer_schema(database_url: str) -> None:
    from sqlmodel import Session

    from netmon.store import SchemaVersionRow

    store = Store(database_url)
    store.migrate()
    with Session(store.engine) as s:
        s.add(SchemaVersionRow(version=999))
        s.commit()
    with pytest.raises(StoreError, match="v999 is newer"):
        store.migrate()
    store.close()


def test_rows_spilled_at_shutdown_are_queued_next_start(tmp_path: Path, database_url: str) -> None:
    dead = Store(f"postgresql+psycopg://netmon@127.0.0.1:{closed_port()}/netmon?connect_timeout=2")
    for i in range(50):
        dead.add_result("s", "wan-1", result(T0 + i))
    dead.add_verdict_change(VerdictChange("s", "down", T0, [{"criterion": "uplink_down"}]))
    spill = dead.spill(tmp_path / "spill")
    dead.close()
    assert spill is not None and spill.exists()
    store = Store(database_url)
    store.migrate()
    assert store.load_spills(tmp_path / "spill") == 51
    assert not list((tmp_path / "spill").iterdir())
    store.flush()
    assert len(list(store.results_since(0))) == 50
    assert store.latest_verdicts()["s"].verdict == "down"
    store.close()


def test_a_version_1_database_is_migrated(database_url: str) -> None:
    """An older database (no ``extra`` column) is brought up to date at start-up, rows kept."""
    from sqlalchemy import text

    store = Store(database_url)
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE probe_result DROP COLUMN extra"))
        conn.execute(text("DELETE FROM schema_version"))
        conn.execute(text("INSERT INTO schema_version (version) VALUES (1)"))
        conn.execute(
            text(
                "INSERT INTO probe_result (site_id, device, kind, ts, duration, ok, sent, received, rtts, reason)"
                " VALUES ('s', 'd', 'icmp', 1.0, 0.1, true, 1, 1, '[0.001]', '')"
            )
        )
    store.close()
    store = Store(database_url)
    store.migrate()
    assert "extra" in {c["name"] for c in inspect(store.engine).get_columns("probe_result")}
    ((_, _, old),) = list(store.results_since(0))
    assert old.rtts == (0.001,) and old.findings is None
    found = SnmpFindings("generic", True, rebooted=True, aps=(AccessPoint(name="ap-1"),))
    snmp = ProbeResult("snmp", True, 2.0, 0.2, 3, 3, (0.2,), "", found)
    store.add_result("s", "wlc", snmp)
    store.flush()
    assert list(store.results_since(2.0))[0][2].findings == found
    store.close()

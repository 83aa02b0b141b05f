"""netmon.timeline: every second in one state; coverage and maintenance over the verdicts."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from netmon.timeline import Change, account, availability, days, merge, period, timeline

FF, DOWN = "fully_functional", "down"
IST = ZoneInfo("Asia/Kolkata")


def test_a_change_holds_from_its_since_and_never_rewrites_an_earlier_one() -> None:
    changes = [Change(FF, 0), Change("degraded", 100), Change(DOWN, 50, ("uplink down",))]
    spans = timeline(changes, 0, 300)
    assert [(s.start, s.end, s.verdict) for s in spans] == [(0, 100, FF), (100, 300, DOWN)]


def test_every_second_is_counted_once_and_outside_coverage_is_no_data() -> None:
    changes = [Change(FF, 0), Change(DOWN, 120, ("uplink down",)), Change(FF, 180)]
    acc = account(changes, covered=[(0, 240), (300, 600)], maintenance=[], start=0, end=600)
    assert acc.seconds[FF] == 120 + 60 + 300
    assert acc.seconds[DOWN] == 60
    assert acc.seconds["no_data"] == 60
    assert sum(acc.seconds.values()) == 600
    assert [(o.start, o.end, o.reasons) for o in acc.outages] == [(120, 180, ("uplink down",))]
    assert availability(acc.seconds) == pytest.approx(1 - 60 / 540)


def test_maintenance_is_never_down_and_before_the_first_change_nothing_is_known() -> None:
    changes = [Change(DOWN, 100, ("uplink down",))]
    acc = account(changes, [(0, 1000)], maintenance=[(100, 400)], start=0, end=500)
    assert acc.seconds["no_data"] == 100  # no verdict yet
    assert acc.seconds["maintenance"] == 300
    assert acc.seconds[DOWN] == 100
    assert [(o.start, o.end) for o in acc.outages] == [(400, 500)]
    inside = account(changes, [(0, 1000)], maintenance=[(0, 1000)], start=0, end=500)
    assert inside.outages == [] and availability(inside.seconds) is None


def test_merge_joins_touching_and_overlapping_intervals() -> None:
    assert merge([(10, 20), (0, 10), (15, 30), (40, 50)]) == [(0, 30), (40, 50)]


def test_days_and_periods_are_local_days() -> None:
    lo, hi = period("2026-11", IST)
    assert hi - lo == 30 * 86400
    assert [d.isoformat() for d, _a, _b in days(lo, hi, IST)][:2] == ["2026-11-01", "2026-11-02"]
    assert len(days(lo, hi, IST)) == 30
    week = period("2026-W48", IST)
    assert week[1] - week[0] == 7 * 86400
    assert period("2026-12", IST)[1] == period("2027-01-01", IST)[0]
    for bad in ("2026-13", "2026-W60", "x", "2026-11-31"):
        with pytest.raises(ValueError, match="is not a period"):
            period(bad, IST)

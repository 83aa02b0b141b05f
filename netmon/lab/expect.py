"""Compare what netmon's API says about a lab site with what its scenario expects."""

from __future__ import annotations

from typing import Any

from netmon.lab.model import Expect, ReasonExpect


def problems(
    expect: Expect, site: dict[str, Any], history: list[dict[str, Any]] | None = None
) -> list[str]:
    """Every way ``site`` (GET /api/v1/sites/{id}) and ``history`` (its ``data``, newest first)
    differ from ``expect``; empty when they match."""
    out: list[str] = []
    verdicts = [v.value for v in expect.verdicts]
    if site.get("verdict") not in verdicts:
        out.append(f"verdict {site.get('verdict')!r}, expected {' or '.join(verdicts)}")
    reasons: list[dict[str, Any]] = site.get("reasons", [])
    out += _reason_problems(expect, reasons)
    out += _state_problems(expect, site.get("device_list", []))
    out += _snmp_problems(expect, site.get("device_list", []))
    if expect.history:
        out += _history_problems(expect, history or [])
    return out


def _matches(want: ReasonExpect, r: dict[str, Any], with_message: bool = True) -> bool:
    if r.get("criterion") not in want.criteria:
        return False
    if want.device is not None and r.get("device") != want.device:
        return False
    return not with_message or all(s in r.get("message", "") for s in want.message_contains)


def _reason_problems(expect: Expect, reasons: list[dict[str, Any]]) -> list[str]:
    out = []
    for want in expect.reasons:
        n = sum(_matches(want, r) for r in reasons)
        what = f"{'|'.join(want.criteria)}" + (f" ({want.device})" if want.device else "")
        if want.count is None and n == 0:
            out.append(f"no {what} reason; reasons: {_brief(reasons)}")
        elif want.count is not None and n != want.count:
            out.append(f"{n} {what} reason(s), expected {want.count}; reasons: {_brief(reasons)}")
    if expect.only_listed_reasons:
        extra = [r for r in reasons if not any(_matches(w, r, False) for w in expect.reasons)]
        if extra:
            out.append(f"unexpected reasons: {_brief(extra)}")
    bad = [r for r in reasons if r.get("criterion") in expect.forbidden_reasons]
    if bad:
        out.append(f"forbidden reasons present: {_brief(bad)}")
    return out


def _state_problems(expect: Expect, devices: list[dict[str, Any]]) -> list[str]:
    states = {d.get("name"): d.get("state") for d in devices}
    return [f"device {name} is {states.get(name)!r}, expected {want!r}"
            for name, want in expect.device_states.items() if states.get(name) != want]  # fmt: skip


def _snmp_problems(expect: Expect, devices: list[dict[str, Any]]) -> list[str]:
    snmp = {d.get("name"): d.get("snmp") or {} for d in devices}
    out = []
    for name, want in expect.snmp_answered.items():
        got = snmp.get(name, {}).get("answered")
        if got is not want:
            out.append(f"device {name}: SNMP answered {got!r}, expected {want!r}")
    return out


def _history_problems(expect: Expect, history: list[dict[str, Any]]) -> list[str]:
    chron = [h.get("verdict") for h in reversed(history)]
    out = []
    for t in expect.history:
        to = {v.value for v in t.to}
        if not any(a == t.from_.value and b in to for a, b in zip(chron, chron[1:], strict=False)):
            out.append(
                f"history {' -> '.join(map(str, chron))} has no {t.from_.value} -> {'|'.join(sorted(to))}"
            )
    return out


def _brief(reasons: list[dict[str, Any]]) -> str:
    if not reasons:
        return "none"
    return "; ".join(
        f"{r.get('criterion')}[{r.get('device') or '-'}] {r.get('message', '')}" for r in reasons
    )

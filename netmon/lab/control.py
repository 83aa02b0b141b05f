"""Client side of the responder's control socket, and ``key=value`` fault parsing for the CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from netmon.lab.model import Faults, LabError, seconds

FAULT_HELP = (
    "loss=0.03  delay=300ms  jitter=20ms  down=true|false  propagate=true|false  "
    "flap=PERIOD/DOWN_FOR[/OFFSET] (e.g. flap=18s/6s, flap=off)  "
    "periods=START-END,START- (e.g. periods=10s-40s)  outage=SECONDS"
)


def request(path: str | Path, payload: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
    """Send one JSON request to the responder and return its reply; raise LabError on failure."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(payload).encode() + b"\n")
            buf = b""
            for _ in range(1024):  # bounded: replies are small
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if b"\n" in buf:
                    break
    except OSError as exc:
        raise LabError(f"lab control socket {path}: {exc}") from exc
    try:
        reply: dict[str, Any] = json.loads(buf.split(b"\n", 1)[0])
    except ValueError as exc:
        raise LabError(f"lab control socket {path}: bad reply {buf[:200]!r}") from exc
    if not reply.get("ok"):
        raise LabError(f"lab responder refused {payload.get('op')}: {reply.get('error')}")
    return reply


def wire_faults(
    faults: Faults, fields: set[str] | None = None, scale: float = 1.0
) -> dict[str, Any]:
    """The responder's form of ``faults`` (only ``fields`` if given), schedules times ``scale``."""
    out: dict[str, Any] = {
        "loss": faults.loss,
        "delay": faults.delay,
        "jitter": faults.jitter,
        "down": faults.down,
        "periods": [[p.start * scale, None if p.end is None else p.end * scale]
                    for p in faults.down_periods],  # fmt: skip
        "flap": None if faults.flap is None else [
            faults.flap.period * scale, faults.flap.down_for * scale, faults.flap.offset * scale],
        "propagate": faults.propagate,
    }  # fmt: skip
    names = {"down_periods": "periods"}
    if fields is None:
        return out
    wanted = {names.get(f, f) for f in fields}
    return {k: v for k, v in out.items() if k in wanted}


def parse_assignments(items: list[str]) -> tuple[dict[str, Any], float | None]:
    """``["loss=0.03", "flap=18s/6s"]`` -> (fields for :class:`Faults`, outage seconds or None)."""
    fields: dict[str, Any] = {}
    outage: float | None = None
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LabError(f"expected key=value, got {item!r}; keys: {FAULT_HELP}")
        key, value = key.strip(), value.strip()
        if key == "outage":
            outage = _seconds(value)
        elif key in ("down", "propagate"):
            fields[key] = _bool(key, value)
        elif key == "flap":
            fields["flap"] = None if value.lower() in ("off", "none", "") else _flap(value)
        elif key == "periods":
            fields["down_periods"] = [_period(p) for p in value.split(",") if p.strip()]
        elif key in ("loss", "delay", "jitter"):
            fields[key] = value
        else:
            raise LabError(f"unknown fault {key!r}; keys: {FAULT_HELP}")
    if "loss" in fields:
        fields["loss"] = _float("loss", fields["loss"])
    return fields, outage


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise LabError(f"{key} must be true or false, got {value!r}")


def _float(key: str, value: str) -> float:
    try:
        return float(value.rstrip("%")) / (100.0 if value.endswith("%") else 1.0)
    except ValueError:
        raise LabError(f"{key} must be a number, got {value!r}") from None


def _seconds(value: str) -> float:
    try:
        return seconds(value)
    except ValueError as exc:
        raise LabError(str(exc)) from None


def _flap(value: str) -> dict[str, str]:
    parts = value.split("/")
    if len(parts) not in (2, 3):
        raise LabError(f"flap must be PERIOD/DOWN_FOR[/OFFSET], got {value!r}")
    out = {"period": parts[0], "down_for": parts[1]}
    if len(parts) == 3:
        out["offset"] = parts[2]
    return out


def _period(value: str) -> dict[str, str]:
    start, sep, end = value.partition("-")
    if not sep:
        raise LabError(f"a period is START-END or START-, got {value!r}")
    return {"start": start.strip() or "0s", **({"end": end.strip()} if end.strip() else {})}

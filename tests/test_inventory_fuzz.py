"""Hostile inventories: every file is a clean accept or a clean error, in bounded CPU and memory.

Two corpora, both run by ``netmon check-config`` (in one subprocess, :mod:`tests.inventory_fuzz`,
each case under :data:`CPU_SECONDS` of CPU and :data:`MEMORY_MB` of memory):

- ``tests/data/inventory/hostile/``: the cases of issue 11 as files (the 342-byte alias bomb,
  ``!!int x``, month 13, bytes 0xff/0xed, 5,000-deep lists, ``count: true``, a 400-digit
  window, ...), each with the problem it must report on its first line (``# expect: ...``);
- :data:`MUTANTS` mutants of the example inventory and the test inventories, generated from
  :data:`SEED` (so the same every run): values and keys replaced by hostile ones, bytes
  inserted, spans deleted or duplicated, lines swapped, files cut short, alias bombs, cycles and
  deep nesting spliced in.

A clean error is exit 78 with every stderr line ``file:line: ...``; a clean accept is exit 0
and ``file: OK (...)``. Anything else -- a traceback, another exit status, a case over its CPU
or memory bound -- fails the test and names the case (its file is kept under pytest's tmp_path).
The alias bomb is also sent to a real ``netmon run`` by SIGHUP: refused, and netmon serves on.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.netmon_process import running_netmon, stop
from tests.test_e2e import wait_for

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "inventory"
HOSTILE = sorted((DATA / "hostile").glob("*.yaml"))
SEED = 11
MUTANTS = 360
CPU_SECONDS = 5.0
MEMORY_MB = 200

VALUES = [
    "true", "no", "~", "null", "-1", "0", "3.0", '"3"', "1e999", ".nan", "-.inf", "0x", "0o17",
    "1:2:3", "1_000", "9" * 400 + "d", "401d", "0.0000001ms", "5 s", "[]", "{}", "[[[[[]]]]]",
    "!!int x", "!!float abc", "!!bool maybe", "!!timestamp 2024-13-01", "2024-02-30",
    "2024-01-01T00:00:00", "!!binary aGVsbG8=", "!!set {a: null}", "!!omap [a: 1]",
    "!!python/object:os.system x", "!local x", "!!str", "*nowhere", "&a", "'unterminated",
    '"\\x00"', "{file: /dev/zero}", "{env: NETMON_FUZZ_UNSET}", "1" * 5000, "x" * 10_000, "<<",
    "=", "\U0001f4a5", "|\n  text", ">-", "- a", "? b", "@", "`", "%YAML 1.1",
]  # fmt: skip
FINE = ["10s", "500ms", "2m", "1h", "30d", "1", "5", "0.5", "'quoted'", '"x"', "plain words"]
KEYS = ["~", "1", "true", "<<", "'id'", "ID", '""', "sites", "policy", "x" * 300, "? [a]"]
BYTES = [
    b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"\x07", b"\t", b"\r", b"{", b"[", b"]",
    b"}", b"&", b"*", b"!", b"|", b">", b"%", b"@", b"`", b":", b"- ", b"#", b"'", b'"', b"\n",
    b"  ", b"? ", b",",
]  # fmt: skip
_VALUE = re.compile(rb"(?<=: )[^,{}\[\]\n]+")
_KEY = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*(?=: )")


def _bomb(rng: random.Random) -> bytes:
    width, depth = rng.randint(3, 9), rng.randint(5, 12)
    lines = ["b0: &b0 [lol, lol, lol]"]
    lines += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * width)}]" for i in range(1, depth)]
    return ("\n".join(lines) + "\n").encode()


def _nest(rng: random.Random) -> bytes:
    depth = rng.choice([10, 63, 65, 100, 999, 1001, 3000])
    open_, close = rng.choice([("[", "]"), ("{a: ", "}")])
    return f"deep: {open_ * depth}1{close * depth}\n".encode()


SPLICES: list[Callable[[random.Random], bytes]] = [
    _bomb,
    _nest,
    lambda rng: b"loop: &loop [*loop]\n",
    lambda rng: b"base: &base {window: 1h}\nmerged: {<<: *base, window: 2h}\n",
    lambda rng: b"policy: &p {max_outages: *p}\n",
]


def _replace(data: bytes, pattern: re.Pattern[bytes], new: bytes, rng: random.Random) -> bytes:
    found = list(pattern.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    return data[: m.start()] + new + data[m.end() :]


def _mutate_once(data: bytes, rng: random.Random) -> bytes:
    """One mutation; the ones that keep the YAML well formed are the more frequent."""
    at, n = rng.randrange(len(data) + 1), rng.randint(1, 200)
    lines = data.split(b"\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.choices(range(10), weights=[25, 10, 10, 10, 6, 6, 5, 5, 5, 8])[0]
    if op == 0:
        return _replace(data, _VALUE, rng.choice(VALUES).encode(), rng)
    if op == 1:
        return _replace(data, _VALUE, rng.choice(FINE).encode(), rng)
    if op == 2:
        return _replace(data, _KEY, rng.choice(KEYS).encode(), rng)
    if op == 3:  # spliced in at the top level, at the start or the end
        splice = rng.choice(SPLICES)(rng)
        return splice + data if rng.random() < 0.5 else data.rstrip(b"\n") + b"\n" + splice
    if op == 4:
        return data[:at] + rng.choice(BYTES) + data[at:]
    if op == 5:
        return data[:at] + data[at + rng.randint(1, 40) :]
    if op == 6:
        to = rng.randrange(len(data) + 1)
        return data[:to] + data[at : at + n] + data[to:]
    if op == 7:
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    if op == 8:
        lines[i] = (b" " * rng.randint(1, 3) + lines[i]) if rng.random() < 0.5 else lines[i][1:]
        return b"\n".join(lines)
    return data[:at]  # cut short, as a kill or a full disk leaves it


def _bases() -> dict[str, bytes]:
    example = (ROOT / "netmon/data/inventory/jharkhand-example.yaml").read_bytes()
    head = example[: example.index(b"\n  - id: ", example.index(b"\n  - id: dh-") + 1)]
    return {
        "small": (DATA / "valid-small.yaml").read_bytes(),
        "http": (DATA / "valid-http.yaml").read_bytes(),
        "snmp": (DATA / "fuzz-base-snmp.yaml").read_bytes(),
        "example": head + b"\n",  # the example's medical colleges and first district hospital
    }


def mutants(directory: Path, count: int = MUTANTS, seed: int = SEED) -> list[Path]:
    """``count`` mutant files in ``directory``, the same for the same seed (1 to 3 mutations each)."""
    rng = random.Random(seed)
    bases = sorted(_bases().items())
    paths = []
    for i in range(count):
        name, data = bases[i % len(bases)]
        for _ in range(rng.randint(1, 3)):
            data = _mutate_once(data, rng)
        path = directory / f"{name}-{i:03d}.yaml"
        path.write_bytes(data)
        paths.append(path)
    return paths


def run_corpus(paths: list[Path]) -> list[dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.inventory_fuzz", str(CPU_SECONDS), str(MEMORY_MB),
         *map(str, paths)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _clean(result: dict[str, object]) -> str | None:
    """Why ``result`` is not a clean accept or a clean error (None if it is)."""
    file, stderr = str(result["file"]), str(result["stderr"])
    if result["failure"]:
        return f"failure: {result['failure']}"
    if float(str(result["rss_mb"])) > MEMORY_MB:
        return f"peak memory {result['rss_mb']} MB"
    if result["code"] == 0:
        return None if str(result["stdout"]).startswith(f"{file}: OK (") else "no OK line"
    if result["code"] != 78:
        return f"exit {result['code']}: {stderr[-500:]}"
    lines = stderr.splitlines()
    located = re.compile(re.escape(file) + r":\d+: \S")
    bad = [line for line in lines if not located.match(line)]
    return f"not file:line: ... : {bad[:3]}" if bad or not lines else None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    paths = HOSTILE + mutants(tmp_path_factory.mktemp("mutants"))
    results = run_corpus(paths)
    assert [r["file"] for r in results] == [str(p) for p in paths]  # every case ran
    return results


def test_mutants_are_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = [p.read_bytes() for p in mutants(tmp_path / "a", 40)]
    b = [p.read_bytes() for p in mutants(tmp_path / "b", 40)]
    assert a == b and len(set(a)) > 35  # the same every run, and not 40 copies of one file


def test_every_case_is_a_clean_accept_or_a_clean_error(corpus: list[dict[str, object]]) -> None:
    unclean = {r["file"]: why for r in corpus if (why := _clean(r)) is not None}
    assert not unclean, "\n".join(f"{f}: {why}" for f, why in unclean.items())
    assert len(corpus) >= 300 + len(HOSTILE)
    codes = [r["code"] for r in corpus[len(HOSTILE) :]]
    # a corpus that is all errors (or all accepts) would not be exploring much
    assert codes.count(0) >= 10 and codes.count(78) >= 150, (codes.count(0), codes.count(78))


def test_each_hostile_file_reports_its_problem(corpus: list[dict[str, object]]) -> None:
    assert len(HOSTILE) >= 30
    for path, result in zip(HOSTILE, corpus, strict=False):
        expect = path.read_bytes().split(b"\n", 1)[0].decode().removeprefix("# expect: ")
        if expect.startswith(":"):  # ":LINE: field: message"
            expect = f"{path}{expect}"
        assert result["code"] == 78 and expect in str(result["stderr"]), (path.name, result)


def test_check_config_exits_78_on_the_alias_bomb_in_its_own_process() -> None:
    bomb = DATA / "hostile" / "alias-bomb.yaml"
    assert bomb.stat().st_size < 400  # the 342 bytes, give or take the expect line
    proc = subprocess.run(
        [sys.executable, "-m", "netmon.cli", "check-config", str(bomb)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 78, proc.stderr
    assert re.fullmatch(re.escape(str(bomb)) + r":\d+: aliases expand .*\n", proc.stderr)


def test_anchors_shared_by_many_sites_are_accepted(tmp_path: Path) -> None:
    """The alias limit is on expansion out of proportion to the file, not on aliases: a fleet
    of sites sharing one policy and probe settings through aliases is a normal inventory."""
    from netmon.inventory import load_inventory

    lines = ["sites:"]
    for s in range(3000):
        first = s == 0
        lines += [
            f"  - id: chc-{s:04d}", f"    name: CHC {s}", "    district: Ranchi", "    type: chc",
            "    probe: &probe {interval: 60s, count: 3, timeout: 1s}" if first else
            "    probe: *probe",
            "    policy: &policy {window: 12h, max_outages: 3, max_reboots: 1, uplink_max_loss:"
            " 0.02, ap_max_loss: 0.05, rtt_p95_max: 150ms, max_silence: 15m}" if first else
            "    policy: *policy",
            "    devices:", f"      - {{name: wan-1, role: wan, address: 127.{s // 250 + 1}.{s % 250}.1}}",
        ]  # fmt: skip
    path = tmp_path / "fleet.yaml"
    path.write_text("\n".join(lines) + "\n")
    inventory = load_inventory(path)
    assert len(inventory.sites) == 3000
    assert {site.policy.max_silence for site in inventory.sites if site.policy} == {900.0}


def test_sighup_with_the_alias_bomb_is_refused_and_netmon_keeps_serving(tmp_path: Path) -> None:
    """The drill's other half: on SIGHUP the same 342 bytes blocked the event loop and killed
    netmon with no final flush. Now the reload is refused with its line, and netmon serves on
    and stops cleanly."""
    with running_netmon(tmp_path) as (port, proc):
        (tmp_path / "inventory.yaml").write_bytes(
            (DATA / "hostile" / "alias-bomb.yaml").read_bytes()
        )
        proc.send_signal(signal.SIGHUP)
        log = tmp_path / "netmon.log"
        wait_for(lambda: "reload refused" in log.read_text())
        assert f"{tmp_path / 'inventory.yaml'}:9: aliases expand" in log.read_text()
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["status"] == "ok" and health["sites"] == 0
        assert stop(proc) == 0
    assert "Traceback" not in log.read_text()

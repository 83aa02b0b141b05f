"""The lab's network namespace: create, wire to the host, record, and always remove.

Layout (addresses only from 198.18.0.0/15)::

    host                              namespace netmon-lab-<pid>-<n>
    nml<pid>h 198.18.0.1/30  <--veth-->  uplink0 198.18.0.2/30
    route 198.18.0.0/15 via 198.18.0.2   lo: every device address as /32
                                         net.ipv4.icmp_echo_ignore_all = 1

Every namespace is recorded in ``/run/netmon-lab/<name>.json`` with the owning process id and
its start time *before* it is created. A namespace whose owner is gone (killed run) is stale:
:func:`cleanup_stale` ends the processes still inside it (by pid, from ``ip netns pids``),
deletes the host-side veth (its route goes with it) and the namespace. Nothing here touches a
namespace without the ``netmon-lab-`` prefix.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from netmon.lab.model import LAB_NET, LabError, check_lab_address

NS_PREFIX = "netmon-lab-"
RUN_DIR = Path(os.environ.get("NETMON_LAB_RUN_DIR", "/run/netmon-lab"))
LINK = ipaddress.IPv4Network("198.18.0.0/30")
HOST_ADDR = "198.18.0.1"
NS_ADDR = "198.18.0.2"
LINK_PREFIX = 30
NS_LINK = "uplink0"
CMD_TIMEOUT = 20.0
PR_SET_PDEATHSIG = 1
MARKERS = ("netmon.lab.responder", "netmon/lab/passpersist.py", "netmon-lab-snmpd.conf")


def sh(args: list[str], *, input_text: str | None = None, check: bool = True) -> str:
    """Run one command (no shell), bounded in time; raise LabError with its stderr on failure."""
    try:
        done = subprocess.run(args, input=input_text, capture_output=True, text=True,
                              timeout=CMD_TIMEOUT, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(args)}: {exc}") from exc
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    ns: str
    veth: str
    owner_pid: int
    owner_start: int  # /proc/<pid>/stat start time, guards against pid reuse
    workdir: str
    control: str
    created_at: float

    @property
    def path(self) -> Path:
        return RUN_DIR / f"{self.ns}.json"

    def save(self) -> None:
        RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        tmp.replace(self.path)

    def owner_alive(self) -> bool:
        return process_start(self.owner_pid) == self.owner_start


def load_record(ns: str) -> Record | None:
    try:
        data = json.loads((RUN_DIR / f"{ns}.json").read_text(encoding="utf-8"))
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def process_start(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live process, None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


# --- discovery and clean-up ----------------------------------------------------------------


def lab_namespaces() -> list[str]:
    out = sh(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(NS_PREFIX)]


def live_records() -> list[Record]:
    recs = [load_record(ns) for ns in lab_namespaces()]
    return [r for r in recs if r is not None and r.owner_alive()]


def cleanup_stale() -> list[str]:
    """Remove every lab namespace (and leftovers) whose owner process is gone.

    Processes are ended only by pid, and only those inside a stale lab namespace (``ip netns
    pids``); helpers of a killed run normally died with it already (PR_SET_PDEATHSIG).
    """
    removed: list[str] = []
    for ns in lab_namespaces():
        rec = load_record(ns)
        if rec is not None and rec.owner_alive():
            continue
        if rec is None and _unrecorded_owner_alive(ns):
            continue
        destroy(ns, rec.veth if rec else None)
        removed.append(ns)
    names = set(lab_namespaces())
    for path in sorted(RUN_DIR.glob(f"{NS_PREFIX}*")) if RUN_DIR.is_dir() else []:
        rec = load_record(path.stem)
        if path.stem in names or (rec is not None and rec.owner_alive()):
            continue  # a live lab, possibly still starting
        if rec is not None:
            _delete_link(rec.veth)
        path.unlink(missing_ok=True)
    return removed


def _unrecorded_owner_alive(ns: str) -> bool:
    parts = ns.removeprefix(NS_PREFIX).split("-")
    return parts[0].isdigit() and process_start(int(parts[0])) is not None


def destroy(ns: str, veth: str | None) -> None:
    """End the processes inside ``ns``, delete its veth and the namespace. Never raises."""
    if not ns.startswith(NS_PREFIX):
        raise LabError(f"refusing to remove namespace {ns!r}: not a lab namespace")
    pids = [int(p) for p in sh(["ip", "netns", "pids", ns], check=False).split() if p.isdigit()]
    terminate(pids)
    if veth:
        _delete_link(veth)
    sh(["ip", "netns", "del", ns], check=False)
    for suffix in (".json", ".sock"):
        with contextlib.suppress(OSError):
            (RUN_DIR / f"{ns}{suffix}").unlink()


def die_with_parent() -> None:
    """``preexec_fn``: have the kernel SIGTERM the child when the lab's process dies, even by
    SIGKILL (``ip netns exec`` execs in place, so this reaches the responder and snmpd)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _delete_link(veth: str) -> None:
    if Path(f"/sys/class/net/{veth}").exists():
        sh(["ip", "link", "del", veth], check=False)


def terminate(pids: Iterable[int], grace: float = 3.0) -> None:
    """SIGTERM each pid, wait up to ``grace`` s, then SIGKILL the ones still there."""
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(process_start(p) is not None for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if process_start(pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (e.g. the pass_persist helpers an snmpd started)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                kids.append(int(entry.name))
    return kids


def lab_processes(*only: str) -> list[tuple[int, int, str]]:
    """(pid, ppid, command line) of lab helper processes (responder, snmpd, pass_persist) found
    by their command line -- for reports and tests only, never to decide what to kill; with
    ``only``, just those whose command line contains one of these strings."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if any(m in cmd for m in MARKERS) and (not only or any(o in cmd for o in only)):
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                found.append((int(entry.name), int(fields[1]), cmd.strip()))
    return found


# --- creation ------------------------------------------------------------------------------


def conflicting_routes(used: Iterable[ipaddress.IPv4Network]) -> list[str]:
    """Host routes that would take traffic for ``used`` away from the lab's 198.18.0.0/15 route.

    A route at least as specific as /15 that overlaps a network the lab uses conflicts (longest
    prefix wins); a broader one (a default route, 198.0.0.0/8) does not. Routes into other
    namespaces elsewhere in 198.18.0.0/15 are left alone and do not conflict.
    """
    used = list(used)
    out = []
    for line in sh(["ip", "-4", "-o", "route", "show", "table", "all"]).splitlines():
        words = line.split()
        if not words:
            continue
        dest = words[1] if words[0] in _ROUTE_TYPES and len(words) > 1 else words[0]
        try:
            net = ipaddress.IPv4Network(dest, strict=False)
        except ValueError:
            continue
        if net.prefixlen >= LAB_NET.prefixlen and any(net.overlaps(u) for u in used):
            out.append(line.strip())
    return out


_ROUTE_TYPES = (
    "broadcast",
    "local",
    "unreachable",
    "prohibit",
    "blackhole",
    "multicast",
    "anycast",
)


def check_host_free(used: Iterable[ipaddress.IPv4Network]) -> None:
    """Refuse to start if the host already routes any address the lab would use."""
    clash = conflicting_routes(used)
    if clash:
        raise LabError(f"the host already routes lab addresses ({'; '.join(clash[:3])}); "
                       "another lab running? try `netmon lab cleanup`")  # fmt: skip


@dataclass
class Namespace:
    name: str
    veth: str

    @classmethod
    def for_this_process(cls, serial: int) -> Namespace:
        pid = os.getpid()
        return cls(f"{NS_PREFIX}{pid}-{serial}", f"nml{pid % 10**8}h{serial % 10}")

    def create(self, addresses: list[str]) -> None:
        """Namespace, veth pair, link addresses, host route, device addresses, echo off."""
        for a in addresses:
            check_lab_address(a)
        sh(["ip", "netns", "add", self.name])
        ns = ["ip", "-n", self.name]
        sh([*ns, "link", "set", "lo", "up"])
        sh(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", NS_LINK,
            "netns", self.name])  # fmt: skip
        _no_ipv6(self.veth)
        sh(["ip", "addr", "add", f"{HOST_ADDR}/{LINK_PREFIX}", "dev", self.veth])
        sh(["ip", "link", "set", self.veth, "up"])
        sh([*ns, "addr", "add", f"{NS_ADDR}/{LINK_PREFIX}", "dev", NS_LINK])
        sh([*ns, "link", "set", NS_LINK, "up"])
        self.exec(["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"])
        self.exec(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], check=False)
        batch = "".join(f"address add {a}/32 dev lo\n" for a in addresses)
        if batch:
            sh([*ns, "-batch", "-"], input_text=batch)
        sh(["ip", "route", "add", str(LAB_NET), "via", NS_ADDR, "dev", self.veth])

    def exec(self, args: list[str], check: bool = True) -> str:
        return sh(["ip", "netns", "exec", self.name, *args], check=check)

    def command(self, args: list[str]) -> list[str]:
        """Argument vector running ``args`` inside the namespace (``ip`` execs, same pid)."""
        return ["ip", "netns", "exec", self.name, *args]

    def routed_here(self, address: str) -> bool:
        """True if the host sends packets for ``address`` into this namespace's veth."""
        check_lab_address(address)
        out = sh(["ip", "-o", "route", "get", address], check=False)
        return f" dev {self.veth} " in f" {out} "

    def pids(self) -> list[int]:
        out = sh(["ip", "netns", "pids", self.name], check=False)
        return [int(p) for p in out.split() if p.isdigit()]


def _no_ipv6(ifname: str) -> None:
    path = Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6")
    with contextlib.suppress(OSError):
        path.write_text("1")

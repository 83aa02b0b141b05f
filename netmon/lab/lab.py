"""``Lab``: simulated facilities in a network namespace, as a context manager.

::

    with Lab(bundled_scenarios(), workdir) as lab:
        lab.inventory_path                 # netmon inventory for the lab sites (SNMP included)
        lab.netmon_env                     # environment netmon needs for its SNMPv3 keys
        lab.set_fault("lab-healthy/wan-1", loss=0.05, delay="200ms")
        lab.reboot("lab-healthy/wan-1")    # SNMP sysUpTime goes back
        lab.set_interface("lab-healthy/wan-1", "uplink0", oper="down")
        lab.stop_agent("lab-healthy/wan-1")  # snmpd gone, ping still answers
        lab.reset_epoch()                  # scenario schedules and events count from now

Start-up removes stale labs of killed runs, refuses if the host already routes any of
198.18.0.0/15, creates the namespace (:mod:`netmon.lab.netns`), starts the ICMP responder and
one snmpd per SNMP device inside it, then the thread that applies the scenarios' run-time
``events`` (:mod:`netmon.lab.events`). Stop (always: normal exit, exception, Ctrl-C, SIGTERM,
SIGHUP) ends the thread and those processes by pid, deletes the veth, its route and the
namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from pydantic import ValidationError

import netmon
from netmon.lab import control
from netmon.lab.events import EventRunner, Fired, Scheduled, schedule
from netmon.lab.model import (
    AgentEvent,
    Faults,
    InterfaceEvent,
    LabError,
    RebootEvent,
    Scenario,
    check_lab_address,
)
from netmon.lab.netns import (
    LINK,
    RUN_DIR,
    Namespace,
    Record,
    check_host_free,
    cleanup_stale,
    destroy,
    die_with_parent,
    process_start,
    terminate,
)
from netmon.lab.plan import LabTiming, Plan, PlannedDevice
from netmon.lab.snmp import SnmpAgent, wait_listening

_serial = 0
_HANDLED = (signal.SIGTERM, signal.SIGHUP)


def require_root() -> None:
    """Raise LabError explaining why the lab cannot run here."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, raw sockets); run it with sudo")
    for tool in ("ip", "snmpd"):
        if shutil.which(tool) is None:
            raise LabError(f"the lab needs `{tool}` (Debian: iproute2 / snmpd)")


class Lab:
    def __init__(
        self,
        scenarios: Sequence[Scenario],
        workdir: str | Path | None = None,
        *,
        timing: LabTiming | None = None,
        seed: int = 1,
        snmp: bool = True,
        inventory_path: str | Path | None = None,
        max_seconds: float = 12 * 3600.0,
    ) -> None:
        self.plan = Plan.build(scenarios, timing)
        self.seed = seed
        self.with_snmp = snmp
        self.max_seconds = max_seconds
        self._own_workdir = workdir is None
        default = Path(tempfile.gettempdir()) / f"netmon-lab-{os.getpid()}-{secrets.token_hex(4)}"
        self.workdir = Path(workdir) if workdir else default  # created by start()
        self.inventory_path = (
            Path(inventory_path) if inventory_path else self.workdir / "inventory.yaml"
        )
        self.ns: Namespace | None = None
        self.record: Record | None = None
        self.responder: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, SnmpAgent] = {}
        self.events: EventRunner | None = None
        self._agent_lock = threading.RLock()  # the event thread and callers both touch agents
        self._faults = {k: d.faults for k, d in self.plan.devices.items()}
        self._old_handlers: dict[int, Any] = {}
        self.started = False

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def scenarios(self) -> list[Scenario]:
        return self.plan.scenarios

    @property
    def devices(self) -> dict[str, PlannedDevice]:
        return self.plan.devices

    @property
    def secrets_dir(self) -> Path:
        return self.workdir / "secrets"

    @property
    def netmon_env(self) -> dict[str, str]:
        """Environment variables netmon needs for the inventory's ``{env: ...}`` SNMP secrets."""
        return self.plan.netmon_env() if self.with_snmp else {}

    def secrets(self) -> list[str]:
        """Every community and SNMPv3 key of the lab's agents (none may leak from netmon)."""
        return self.plan.secrets() if self.with_snmp else []

    @property
    def control_path(self) -> Path:
        assert self.ns is not None, "the lab is not running"
        return RUN_DIR / f"{self.ns.name}.sock"

    # -- start / stop ----------------------------------------------------------------------
    def start(self) -> Lab:
        global _serial
        require_root()
        cleanup_stale()
        check_host_free([LINK, *self.plan.networks()])
        _serial += 1
        self.ns = Namespace.for_this_process(_serial)
        try:
            self._install_handlers()
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _start_parts(self) -> None:
        assert self.ns is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.inventory_path.parent.mkdir(parents=True, exist_ok=True)
        if self.with_snmp:
            self.plan.write_secrets(self.secrets_dir)
            self._write_env_file()
        text = self.plan.inventory_yaml(self.ns.name, self.secrets_dir, snmp=self.with_snmp)
        self.inventory_path.write_text(text, encoding="utf-8")
        self.record = Record(self.ns.name, self.ns.veth, os.getpid(), process_start(os.getpid()) or 0,
                             str(self.workdir), str(self.control_path), time.time())  # fmt: skip
        self.record.save()
        self.ns.create(self.plan.addresses())
        self._start_responder()
        if self.with_snmp:
            self._start_agents()
        self._write_manifest()
        self._start_events()

    def stop(self) -> None:
        """Stop everything and remove the namespace. Idempotent; never raises LabError."""
        previous = {s: signal.getsignal(s) for s in (*_HANDLED, signal.SIGINT)} if _main() else {}
        with contextlib.suppress(ValueError):
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)  # cleanup must not be interrupted
        try:
            self._stop_parts()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._restore_handlers()
            self.started = False

    def _stop_parts(self) -> None:
        if self.events is not None:
            self.events.stop()  # first: no event may start an agent while we stop them
        with self._agent_lock:
            for agent in self.agents.values():
                with contextlib.suppress(Exception):
                    agent.stop()
        if self.responder is not None and self.responder.poll() is None:
            terminate([self.responder.pid])
        if self.responder is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.responder.wait(timeout=5)
        self.responder = None
        if self.ns is not None:
            destroy(self.ns.name, self.ns.veth)
            with contextlib.suppress(OSError):
                self.control_path.unlink()
            self.ns = None
        self.record = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- parts -----------------------------------------------------------------------------
    def _start_responder(self) -> None:
        assert self.ns is not None
        config = self.workdir / "responder.json"
        config.write_text(
            json.dumps(self.plan.responder_config(self.seed), indent=1), encoding="utf-8"
        )
        args = [sys.executable, "-m", "netmon.lab.responder", "--config", str(config),
                "--control", str(self.control_path), "--parent-pid", str(os.getpid()),
                "--max-seconds", str(self.max_seconds)]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(Path(netmon.__file__).resolve().parents[1]))
        with (self.workdir / "responder.log").open("ab") as log, _stop_signals_deferred():
            self.responder = subprocess.Popen(self.ns.command(args), stdin=subprocess.DEVNULL,
                                              stdout=log, stderr=log, env=env,
                                              preexec_fn=die_with_parent)  # fmt: skip
        self._wait_responder()

    def _wait_responder(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.responder is not None
            if self.responder.poll() is not None:
                log = (self.workdir / "responder.log").read_text(errors="replace")[-2000:]
                raise LabError(f"the responder exited with {self.responder.returncode}:\n{log}")
            with contextlib.suppress(LabError):
                control.request(self.control_path, {"op": "ping"}, timeout=1.0)
                return
            time.sleep(0.05)
        raise LabError(f"the responder did not answer on {self.control_path} within {timeout:g}s")

    def _start_agents(self) -> None:
        assert self.ns is not None
        for key, dev in self.plan.devices.items():
            if dev.snmp is not None:
                directory = self.workdir / "snmp" / key.replace("/", "__")
                agent = SnmpAgent(key, dev.address, dev.snmp, directory)
                agent.write_files()
                self.agents[key] = agent
        for agent in self.agents.values():
            with _stop_signals_deferred():
                agent.start(self.ns, self.workdir, die_with_parent)
        if self.agents:
            wait_listening(list(self.agents.values()), self.ns)

    def _write_env_file(self) -> None:
        """``netmon.env`` (0600): ``NAME=value`` lines for netmon's environment, if any."""
        env = self.netmon_env
        if env:
            path = self.workdir / "netmon.env"
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")

    def _start_events(self) -> None:
        items = schedule(self.scenarios)
        if not items:
            return
        log_path = self.workdir / "events.log"

        def log(msg: str) -> None:
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

        self.events = EventRunner(items, self._apply_event, log, max_seconds=self.max_seconds)
        self.events.start()

    def _apply_event(self, item: Scheduled) -> None:
        ev = item.event
        if not self.with_snmp:
            raise LabError("the lab runs without SNMP agents (--no-snmp)")
        if isinstance(ev, RebootEvent):
            self.reboot(item.key, ev.downtime)
        elif isinstance(ev, InterfaceEvent):
            self.set_interface(item.key, ev.interface, oper=ev.oper, admin=ev.admin)
        elif isinstance(ev, AgentEvent) and ev.action == "agent_stop":
            self.stop_agent(item.key)
        else:
            self.start_agent(item.key)

    def fired_events(self, ref: str | None = None, *, this_epoch: bool = False) -> list[Fired]:
        """Run-time events applied so far (``ref``: of one device; since the last epoch reset)."""
        if self.events is None:
            return []
        key = None if ref is None else self.device(ref).key
        return self.events.fired(key, this_epoch=this_epoch)

    def _write_manifest(self) -> None:
        """``lab.json`` in the workdir (0600: it holds the agents' secrets)."""
        assert self.ns is not None
        data = {"namespace": self.ns.name, "owner_pid": os.getpid(), "control": str(self.control_path),
                "inventory": str(self.inventory_path),
                "netmon_env_file": str(self.workdir / "netmon.env") if self.netmon_env else None,
                "devices": {k: {"address": d.address, "role": d.role, "parent": d.parent,
                                "snmp": self.agents[k].describe() if k in self.agents else None}
                            for k, d in self.plan.devices.items()}}  # fmt: skip
        path = self.workdir / "lab.json"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")

    # -- signals ---------------------------------------------------------------------------
    def _install_handlers(self) -> None:
        if not _main():
            return
        for sig in _HANDLED:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                self._old_handlers[sig] = signal.signal(sig, _exit_on_signal)

    def _restore_handlers(self) -> None:
        for sig, old in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, old)
        self._old_handlers.clear()

    # -- run-time control ------------------------------------------------------------------
    def device(self, ref: str) -> PlannedDevice:
        """A device by ``site/device`` key, by address, or by bare name if that is unique."""
        if ref in self.plan.devices:
            return self.plan.devices[ref]
        hits = [d for d in self.plan.devices.values() if ref in (d.address, d.name)]
        if len(hits) != 1:
            raise LabError(f"no single lab device {ref!r} ({len(hits)} matches); use site/device")
        return hits[0]

    def address(self, ref: str) -> str:
        return self.device(ref).address

    def set_fault(self, ref: str, **faults: Any) -> dict[str, Any]:
        """Change faults of one device now. Values are real seconds (no time_scale)."""
        dev = self.device(ref)
        merged = self._faults[dev.key].model_dump() | faults
        try:
            new = Faults.model_validate(merged)
        except ValidationError as exc:
            raise LabError(f"bad faults for {dev.key}: {exc}") from exc
        self._faults[dev.key] = new
        wire = control.wire_faults(new, set(faults))
        reply = control.request(self.control_path, {"op": "set", "device": dev.key, "faults": wire})
        return dict(reply["device"])

    def outage(self, ref: str, seconds: float) -> None:
        """Silence ``ref`` (and everything behind it) for ``seconds`` from now."""
        dev = self.device(ref)
        control.request(self.control_path, {"op": "outage", "device": dev.key, "seconds": seconds})

    def reboot(self, ref: str, downtime: float = 0.0) -> None:
        """Reboot: SNMP sysUpTime restarts from 0; ICMP silent for ``downtime`` seconds."""
        dev = self.device(ref)
        agent = self.agent(dev.key)
        if downtime > 0:
            self.outage(dev.key, downtime)
        with self._agent_lock:
            agent.reboot()

    def set_interface(
        self, ref: str, index: int | str, oper: str | None = "down", admin: str | None = None
    ) -> None:
        """Interface ``index`` (ifIndex or ifName) of ``ref``'s agent goes up/down."""
        agent = self.agent(ref)
        with self._agent_lock:
            agent.set_interface(index, oper=oper, admin=admin)

    def stop_agent(self, ref: str) -> None:
        """Stop ``ref``'s snmpd: no SNMP answer at all, ping unaffected. Idempotent."""
        agent = self.agent(ref)
        with self._agent_lock:
            agent.stop()

    def start_agent(self, ref: str) -> None:
        """Start ``ref``'s snmpd again (same state file: uptime and interfaces continue)."""
        agent = self.agent(ref)
        with self._agent_lock:
            if agent.running:
                return
            assert self.ns is not None, "the lab is not running"
            agent.start(self.ns, self.workdir, die_with_parent)
            wait_listening([agent], self.ns)

    def agent(self, ref: str) -> SnmpAgent:
        key = self.device(ref).key
        if key not in self.agents:
            raise LabError(f"{key} has no SNMP agent (give it `snmp:` in its scenario)")
        return self.agents[key]

    def reset_epoch(self) -> None:
        """Make every scenario schedule (down_periods, flap, events) count from now."""
        control.request(self.control_path, {"op": "epoch"})
        if self.events is not None:
            self.events.reset()

    def stats(self, ref: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"op": "stats"}
        if ref is not None:
            payload["device"] = self.device(ref).key
        return control.request(self.control_path, payload)

    def routed(self, address: str) -> bool:
        """True if the host routes ``address`` into this lab (check before sending to it)."""
        check_lab_address(address)
        return self.ns is not None and self.ns.routed_here(address)

    def pids(self) -> list[int]:
        """Pids of every process the lab started (responder, snmpd)."""
        with self._agent_lock:
            procs = [self.responder, *(a.process for a in self.agents.values())]
        return [p.pid for p in procs if p is not None]


def _main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _stop_signals_deferred() -> Iterator[None]:
    """While a helper process is started: a stop signal is noted and delivered right after.
    Raised inside ``Popen`` (between the fork and the Popen object), it would leave a child that
    nothing knows about -- not yet in the namespace either, so ``destroy`` misses it too."""
    if not _main():
        yield
        return
    got: list[int] = []
    sigs = (*_HANDLED, signal.SIGINT)
    old = {sig: signal.signal(sig, lambda n, _f: got.append(n)) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if got:
            signal.raise_signal(got[0])  # now, to the handler it was meant for

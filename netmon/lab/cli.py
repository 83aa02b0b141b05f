"""``netmon lab``: run simulated facilities in a network namespace (needs root).

    netmon lab up [--scenarios DIR] [--inventory-out FILE] start; wait for Ctrl-C / SIGTERM
    netmon lab set DEVICE key=value ...                     change faults of a running lab
    netmon lab reboot DEVICE [--downtime S]                 SNMP sysUpTime restarts
    netmon lab status                                       running labs and echo counters
    netmon lab cleanup                                      remove stale namespaces/processes
    netmon lab demo [--port 8000]                           Jharkhand demo lab + netmon run

DEVICE is ``site/device`` (e.g. ``lab-healthy/wan-1``), a unique device name, or an address.
Keys for ``set``: loss, delay, jitter, down, propagate, flap, periods, outage, and ifN=up|down
(SNMP interface N's ifOperStatus).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from netmon.lab import control
from netmon.lab.model import Faults, LabError, Snmp, bundled_scenarios, load_scenarios
from netmon.lab.netns import cleanup_stale, lab_namespaces, live_records, load_record
from netmon.lab.snmp import SnmpAgent

MAX_WAIT = 7 * 24 * 3600.0  # longest `lab up` / `lab demo` keeps running


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser("lab", help="simulated facilities in a network namespace (root)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    lsub = lab.add_subparsers(dest="lab_command")
    lab.set_defaults(func=lambda _args: _help(lab))
    up = lsub.add_parser("up", help="start the lab and wait until Ctrl-C / SIGTERM")
    up.add_argument(
        "--scenarios", type=Path, help="directory or file (default: the bundled scenarios)"
    )
    up.add_argument("--inventory-out", type=Path, help="where to write the netmon inventory")
    up.add_argument("--workdir", type=Path, help="keep logs and state here (default: temp dir)")
    up.add_argument("--no-snmp", action="store_true", help="do not start snmpd agents")
    up.add_argument("--seed", type=int, default=1, help="seed of the loss/jitter generators")
    up.add_argument("--duration", type=float, default=MAX_WAIT, help="stop after this many seconds")
    up.set_defaults(func=cmd_up)
    st = lsub.add_parser("set", help="change faults of a device of the running lab")
    st.add_argument("device")
    st.add_argument("assignments", nargs="+", metavar="key=value", help=control.FAULT_HELP)
    st.set_defaults(func=cmd_set)
    rb = lsub.add_parser("reboot", help="reboot a device: SNMP sysUpTime goes back to 0")
    rb.add_argument("device")
    rb.add_argument("--downtime", type=float, default=0.0, help="seconds without ping replies")
    rb.set_defaults(func=cmd_reboot)
    lsub.add_parser("status", help="running labs and their counters").set_defaults(func=cmd_status)
    lsub.add_parser("cleanup", help="remove stale lab namespaces and processes").set_defaults(
        func=cmd_cleanup
    )
    demo = lsub.add_parser("demo", help="Jharkhand demo lab with netmon running against it")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--workdir", type=Path, help="keep the inventory, database and logs here")
    demo.add_argument(
        "--duration", type=float, default=MAX_WAIT, help="stop after this many seconds"
    )
    demo.add_argument("--no-browser", action="store_true",
                      help="do not open the status board in a browser")  # fmt: skip
    demo.set_defaults(func=cmd_demo)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fail(exc: Exception) -> int:
    print(f"netmon lab: {exc}", file=sys.stderr)
    return 1


# --- up ------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from netmon.lab.lab import Lab

    obey_sigint()
    try:
        scenarios = load_scenarios(args.scenarios) if args.scenarios else bundled_scenarios()
        lab = Lab(scenarios, args.workdir, seed=args.seed, snmp=not args.no_snmp,
                  inventory_path=args.inventory_out, max_seconds=args.duration + 60)  # fmt: skip
        with lab:
            _print_lab(lab)
            print(
                "\nRunning; Ctrl-C or SIGTERM stops the lab and removes the namespace.", flush=True
            )
            _wait(args.duration, lambda: lab.responder is not None and lab.responder.poll() is None)
    except LabError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        print("\nstopped; namespace removed")
    return 0


def obey_sigint() -> None:
    """Ctrl-C (SIGINT) stops the lab whatever this process inherited. Python installs its
    KeyboardInterrupt handler only if SIGINT was at its default when it started; a shell script
    or CI job that runs us in the background (``cmd &``), or ``nohup``, hands us SIGINT ignored,
    and ``netmon lab up`` would then never stop on it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _print_lab(lab: Any) -> None:
    print(f"lab namespace {lab.ns.name}: {len(lab.devices)} devices, "
          f"{len(lab.agents)} SNMP agents; workdir {lab.workdir}")  # fmt: skip
    for sc in lab.scenarios:
        devs = [d for d in lab.devices.values() if d.site == sc.site.id]
        print(f"  {sc.site.id:28} {devs[0].address if devs else '-':>15}  {sc.description}")
    print(f"\ninventory: {lab.inventory_path}")
    if lab.netmon_env:  # SNMPv3 privacy keys: netmon reads them from its environment
        env_file = lab.workdir / "netmon.env"
        print(f"run netmon:  (set -a; . {env_file}; netmon run --config {lab.inventory_path})")
    else:
        print(f"run netmon:  netmon run --config {lab.inventory_path}")
    if lab.events is not None:
        print(
            f"run-time events: {len(lab.events.items)} scheduled, logged to {lab.workdir / 'events.log'}"
        )
    print("change faults:  netmon lab set SITE/DEVICE loss=0.05 delay=200ms down=true ...")


def _wait(duration: float, alive: Any) -> None:
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and alive():
        time.sleep(0.5)


# --- set / reboot / status / cleanup -------------------------------------------------------


def _manifest() -> dict[str, Any]:
    recs = live_records()
    if not recs:
        raise LabError("no lab is running (start one with `netmon lab up` or `netmon lab demo`)")
    if len(recs) > 1:
        raise LabError(f"{len(recs)} labs are running; stop all but one")
    path = Path(recs[0].workdir) / "lab.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read the lab manifest {path}: {exc}") from exc
    return data


def _resolve(manifest: dict[str, Any], ref: str) -> str:
    devices: dict[str, Any] = manifest["devices"]
    if ref in devices:
        return ref
    hits = [k for k, d in devices.items() if ref in (d["address"], k.split("/", 1)[1])]
    if len(hits) != 1:
        raise LabError(f"no single lab device {ref!r} ({len(hits)} matches); use site/device")
    return hits[0]


def _agent(manifest: dict[str, Any], key: str) -> SnmpAgent:
    info = manifest["devices"][key].get("snmp")
    if not info:
        raise LabError(f"{key} has no SNMP agent")
    return SnmpAgent(key, info["address"], Snmp(), Path(info["state_file"]).parent)


def cmd_set(args: argparse.Namespace) -> int:
    try:
        manifest = _manifest()
        key = _resolve(manifest, args.device)
        ifaces = [a for a in args.assignments if a.startswith("if") and a[2:3].isdigit()]
        fields, outage = control.parse_assignments([a for a in args.assignments if a not in ifaces])
        for item in ifaces:
            index, _, state = item[2:].partition("=")
            _agent(manifest, key).set_interface(int(index), oper=state)
        if fields:
            wire = control.wire_faults(Faults.model_validate(fields), set(fields))
            reply = control.request(
                manifest["control"], {"op": "set", "device": key, "faults": wire}
            )
            print(json.dumps(reply["device"]["faults"]))
        if outage is not None:
            control.request(manifest["control"], {"op": "outage", "device": key, "seconds": outage})
    except (LabError, ValueError) as exc:
        return _fail(exc)
    return 0


def cmd_reboot(args: argparse.Namespace) -> int:
    try:
        manifest = _manifest()
        key = _resolve(manifest, args.device)
        if args.downtime > 0:
            control.request(
                manifest["control"], {"op": "outage", "device": key, "seconds": args.downtime}
            )
        _agent(manifest, key).reboot()
    except LabError as exc:
        return _fail(exc)
    print(f"{key}: rebooted")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    names = lab_namespaces()
    if not names:
        print("no lab namespaces")
    for ns in names:
        rec = load_record(ns)
        state = "running" if rec and rec.owner_alive() else "STALE (run `netmon lab cleanup`)"
        print(
            f"{ns}: {state}"
            + (f", owner pid {rec.owner_pid}, workdir {rec.workdir}" if rec else "")
        )
        if rec and rec.owner_alive():
            try:
                totals = control.request(rec.control, {"op": "stats"})["totals"]
                print("  " + ", ".join(f"{k} {v}" for k, v in totals.items()))
            except LabError as exc:
                print(f"  {exc}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    removed = cleanup_stale()
    print("\n".join(f"removed {r}" for r in removed) or "nothing stale")
    left = [r.ns for r in live_records()]
    if left:
        print(f"still running (owner alive): {', '.join(left)}")
    return 0


# --- demo ----------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from netmon.lab.demo import DEMO_TIMING, add_hindi_names, demo_scenarios
    from netmon.lab.lab import Lab, require_root

    try:
        require_root()
        lab = Lab(
            demo_scenarios(), args.workdir, timing=DEMO_TIMING, max_seconds=args.duration + 60
        )
        lab.start()
    except LabError as exc:
        return _fallback(args, exc)
    try:
        add_hindi_names(lab.inventory_path)
        _print_lab(lab)
        return _run_netmon(lab, args)
    except KeyboardInterrupt:
        return 0
    finally:
        lab.stop()
        print("lab stopped; namespace removed", flush=True)


def _run_netmon(lab: Any, args: argparse.Namespace) -> int:
    from netmon.lab.runner import NetmonProcess

    server = NetmonProcess(lab.inventory_path, lab.workdir, host=args.host, port=args.port,
                           log_to_file=False, env=lab.netmon_env)  # fmt: skip
    print(f"\nstarting netmon on {server.url} ...", flush=True)
    try:
        server.wait_ready()
        _show_board(server.url, args)
        print(f"the API: {server.url}/api/v1/sites  ({server.url}/docs, {server.url}/metrics)")
        print(
            "verdicts appear after ~3 probe rounds (15 s); Ctrl-C stops netmon and the lab.\n",
            flush=True,
        )
        _wait(args.duration, server.alive)
    except RuntimeError as exc:  # netmon exited or never answered: its own output says why
        print(f"netmon lab demo: {str(exc).splitlines()[0]}", file=sys.stderr)
    finally:
        code = server.stop()
    return code or 0


def _show_board(base_url: str, args: argparse.Namespace) -> None:
    """The demo opens with the status board: its URL first, then a browser if there is one."""
    from netmon.lab.demo import board_banner, open_board

    print("\n" + board_banner(base_url), flush=True)
    if not getattr(args, "no_browser", False):
        print(open_board(f"{base_url}/status"), flush=True)


def _board_when_ready(args: argparse.Namespace, timeout: float = 120.0) -> threading.Thread:
    """For the loopback fallback (netmon runs in this process): show the board once
    /healthz answers past loading (a background thread, bounded by ``timeout``)."""
    from netmon.lab.runner import NetmonProcess

    base = f"http://{args.host}:{args.port}"

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if NetmonProcess.get_json(base + "/healthz").get("status") != "loading":
                    _show_board(base, args)
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)

    thread = threading.Thread(target=watch, name="board", daemon=True)
    thread.start()
    return thread


def _fallback(args: argparse.Namespace, why: Exception) -> int:
    from netmon import cli

    print(f"netmon lab demo: cannot build the lab here: {why}", file=sys.stderr)
    print("Falling back to netmon on the bundled loopback example (every site answers from "
          "127.x addresses, so all look healthy); the status board: "
          f"http://{args.host}:{args.port}/status", file=sys.stderr, flush=True)  # fmt: skip
    _board_when_ready(args)
    return cli.main(["run", "--host", args.host, "--port", str(args.port)])

"""The ``netmon`` command.

    netmon run [--config FILE] [--host H] [--port P] [--database-url URL] [--icmp-mode MODE]
    netmon check-config FILE [FILE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from netmon import __version__
from netmon.errors import ConfigError, NetmonError
from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.settings import Settings

log = logging.getLogger("netmon")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netmon", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"netmon {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="probe, judge and serve the API and /metrics in one process")
    run.add_argument("--config", type=Path, help="inventory YAML (default: bundled Jharkhand example)")
    run.add_argument("--host", help="listen address (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default 8000)")
    run.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")
    run.add_argument("--icmp-mode", choices=["auto", "raw", "dgram"])
    run.add_argument("--icmp-rate-limit", type=float, metavar="ECHO_PER_S",
                     help="cap on echo requests per second over all devices (default: none)")  # fmt: skip
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check-config", help="validate inventory files; print every problem")
    check.add_argument("files", nargs="+", type=Path)
    check.set_defaults(func=cmd_check_config)
    _add_lab(sub)
    return parser


def _add_lab(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from netmon.lab.cli import add_parser
    except ImportError:
        return
    add_parser(sub)


def cmd_check_config(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            inv = load_inventory(path)
        except ConfigError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        devices = sum(len(s.devices) for s in inv.sites)
        print(f"{path}: OK ({len(inv.sites)} sites, {devices} devices)")
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = Settings.from_env().with_overrides(
        config=args.config, host=args.host, port=args.port, database_url=args.database_url,
        icmp_mode=args.icmp_mode, icmp_rate_limit=args.icmp_rate_limit, log_level=args.log_level,
    )  # fmt: skip
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except NetmonError as exc:
        print(f"netmon: {exc}", file=sys.stderr)
        return 1
    return 0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (it re-raises SIGTERM after shutdown, which
    would kill the process before netmon flushes its pending results)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self, sig: signal.Signals) -> None:
        log.info("%s received: shutting down", sig.name)
        self.should_exit = True


def _reload(monitor: Monitor, path: Path) -> None:
    """SIGHUP: re-read the inventory; on any problem keep running the old one."""
    if not monitor.ready:
        log.warning("reload ignored: still loading history; send SIGHUP again when ready")
        return
    try:
        inventory = load_inventory(path)
    except ConfigError as exc:
        log.error("reload refused, keeping the running inventory:\n%s", exc)
        return
    monitor.reload(inventory)


async def serve(settings: Settings) -> None:
    """Run the monitor with its API and /metrics until SIGINT/SIGTERM, then flush and exit."""
    import uvicorn

    from exporters.prometheus import make_registry
    from netmon.api import create_app
    from netmon.store import Store
    from probes import Engines
    from probes.icmp import KIND as ICMP

    inventory = load_inventory(settings.config)
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    await asyncio.to_thread(store.migrate)
    engines = await Engines.open(settings)  # every registered kind's engine
    icmp = engines.get(ICMP)
    icmp_mode = icmp.mode if icmp is not None else "none"
    devices = sum(len(s.devices) for s in inventory.sites)
    log.info("netmon %s: %d sites, %d devices from %s; store %s; ICMP %s", __version__,
             len(inventory.sites), devices, settings.config, store.safe_url, icmp_mode)  # fmt: skip
    retention = settings.retention_days * 86400 or None
    monitor = Monitor(inventory, store, engines, spill_dir=settings.data_dir / "spill", retention=retention)
    app = create_app(monitor, make_registry(monitor, __version__, icmp_mode))
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            lifespan="off", access_log=False)  # fmt: skip
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.request_exit, sig)
    loop.add_signal_handler(signal.SIGHUP, _reload, monitor, settings.config)
    # Serve at once (API answers 503 "loading" until the windows are refilled), then start.
    http = asyncio.create_task(server.serve(), name="http")
    starting = asyncio.create_task(monitor.start(), name="start")
    try:
        await asyncio.wait({http, starting}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start (e.g. the database) ends the run here
            await http
    finally:
        if not starting.done():
            starting.cancel()  # stopped while loading
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        if not http.done():
            server.should_exit = True
            await http
        log.info("stopping: flushing %d pending results", len(store.pending))
        await monitor.stop()
        await engines.close()
        store.close()
        log.info("stopped; %d results written in all", store.written)


if __name__ == "__main__":
    sys.exit(main())

"""The ``netmon`` command.

    netmon run [--config FILE] [--snmp-profiles DIR] [--host H] [--port P] [--database-url URL] ...
    netmon check-config [--snmp-profiles DIR] [--report] [FILE ...]
    netmon token create --name NAME --scope SCOPE [--scope ...] [--database-url URL]
    netmon token list | netmon token revoke NAME
    netmon import csv SITES.csv [DEVICES.csv] --into FILE [--dry-run] [--prune]
    netmon export csv [--from FILE] SITES.csv [DEVICES.csv]

Exit status: 0; 78 (EX_CONFIG) for a configuration error, printed as ``file:line: field:
message`` lines, the same from ``run`` and ``check-config``; 1 for any other netmon error, as one
``netmon: ...`` line; 2 for a command-line error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from netmon import __version__, heap
from netmon.compaction import Compactor
from netmon.config import EX_CONFIG, ValidatedConfig, validate
from netmon.errors import ConfigError, ConfigProblem, NetmonError, StoreError, StoreUnavailable
from netmon.fleet import Fleet  # its tables, before the store's schema is made
from netmon.journal import Journal
from netmon.judging import Judging  # its table, before the store's schema is made
from netmon.monitor import Monitor
from netmon.poller import build_jobs
from netmon.rollup import Rollups, rebuild
from netmon.settings import Settings
from netmon.snapshot import FILE_NAME as SNAPSHOT_FILE
from netmon.snapshot import Snapshotter
from netmon.store import Store

if TYPE_CHECKING:
    from netmon.poller_link import PollerLink

log = logging.getLogger("netmon")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ConfigError as exc:
        _print_problems(exc)
        return EX_CONFIG
    except NetmonError as exc:
        print(f"netmon: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netmon", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--version", action="version", version=f"netmon {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="probe, judge and serve the API and /metrics in one process")
    _add_server_args(run, probes=True)
    run.add_argument("--poller", choices=["process", "inline"],
                     help="probe in a child process (default) or on the server's own loop")  # fmt: skip
    run.set_defaults(func=cmd_run)
    serve = sub.add_parser(
        "serve", help="judge and serve the API; remote pollers (`netmon poll`) probe"
    )
    _add_server_args(serve, probes=False)
    serve.set_defaults(func=cmd_serve)
    _add_poll(sub)
    check = sub.add_parser(
        "check-config", help="validate what `run` would use; print every problem (exit 78)"
    )
    check.add_argument("files", nargs="*", type=Path,
                       help="inventory files (default: the one `run` would use)")  # fmt: skip
    _add_snmp_profiles(check)
    check.add_argument("--report", action="store_true",
                       help="also list what a valid inventory lacks (sites without an hfr_id)")  # fmt: skip
    check.set_defaults(func=cmd_check_config)
    _add_rollup(sub)
    _add_token(sub)
    _add_lab(sub)
    _add_onboard(sub)
    return parser


def _add_server_args(run: argparse.ArgumentParser, probes: bool) -> None:
    run.add_argument(
        "--config", type=Path, help="inventory YAML (default: bundled Jharkhand example)"
    )
    _add_snmp_profiles(run)
    run.add_argument("--host", help="listen address (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default 8000)")
    run.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    if probes:
        run.add_argument("--icmp-mode", choices=["auto", "raw", "dgram"])
        run.add_argument("--icmp-rate-limit", type=float, metavar="ECHO_PER_S",
                         help="cap on echo requests per second over all devices (default: none)")  # fmt: skip


def _add_poll(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    poll = sub.add_parser(
        "poll", help="probe a share of a `netmon serve`'s devices and send it the results"
    )
    poll.add_argument(
        "--server",
        required=True,
        help="the server's URL, e.g. https://netmon.example:8000; "
        "several servers on one database: their URLs, comma separated (the next when one fails)",
    )
    poll.add_argument("--token-file", type=Path, required=True,
                      help="a file holding a token with the scope poller (its name is the poller's)")  # fmt: skip
    poll.add_argument(
        "--group", default="central", help="poller group (the sites' poller_group; default central)"
    )
    poll.add_argument(
        "--outbox", type=Path, help="outbox file (default: outbox.db in the data dir)"
    )
    poll.add_argument("--icmp-mode", choices=["auto", "raw", "dgram"])
    poll.add_argument("--icmp-rate-limit", type=float, metavar="ECHO_PER_S")
    poll.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    poll.set_defaults(func=cmd_poll, snmp_profiles=None)


def _add_rollup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollup = sub.add_parser("rollup", help="the daily site rollups (netmon.rollup)")
    actions = rollup.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser("rebuild", help="recompute local days from the raw tables")
    rebuild.add_argument("--from", dest="first", type=_date, required=True, metavar="YYYY-MM-DD")
    rebuild.add_argument("--to", dest="last", type=_date, required=True, metavar="YYYY-MM-DD")
    rebuild.add_argument("--config", type=Path, help="inventory YAML (default: as `run`)")
    rebuild.add_argument("--database-url", help="SQLAlchemy URL (default: as `run`)")
    rebuild.set_defaults(func=cmd_rollup_rebuild)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-30") from None


def cmd_rollup_rebuild(args: argparse.Namespace) -> int:
    """Re-roll every site's days ``--from`` .. ``--to`` (inclusive), with a progress bar."""
    settings = settings_from(args, config=args.config, database_url=args.database_url)
    config = validate(settings)
    if args.last < args.first:
        raise ConfigError(
            [ConfigProblem("command line", None, "--to", "must not be before --from")]
        )
    _database_folder(settings.database_url)
    store = Store(settings.database_url)
    try:
        store.migrate()
        total, rows = (args.last - args.first).days + 1, 0
        for i, (day, n) in enumerate(rebuild(store, config.inventory, settings.tz, args.first,
                                             args.last), start=1):  # fmt: skip
            rows += n
            _progress(i, total, day)
    finally:
        store.close()
    print(f"rolled {rows} site days ({total} days x {len(config.inventory.sites)} sites)")
    return 0


def _progress(done: int, total: int, day: dt.date) -> None:
    """A bar on a terminal; a line per tenth of the work elsewhere (a log stays short)."""
    bar = "#" * (30 * done // total)
    line = f"[{bar:<30}] {done}/{total} days, {day.isoformat()}"
    if sys.stderr.isatty():
        print("\r" + line, end="\n" if done == total else "", file=sys.stderr, flush=True)
    elif done == total or done % max(1, total // 10) == 0:
        print(line, file=sys.stderr, flush=True)


def _add_snmp_profiles(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snmp-profiles", type=Path, metavar="DIR",
                        help="a site's own SNMP profiles, added to the bundled ones")  # fmt: skip


def _add_token(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from netmon.auth import SCOPES

    token = sub.add_parser("token", help="bearer tokens for the API's writes (netmon.auth)")
    verbs = token.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="make a token and print it once, on stdout alone")
    create.add_argument("--name", required=True, help="who the token is for (in the audit log)")
    create.add_argument("--scope", action="append", default=[], metavar="SCOPE",
                        help=f"repeatable: {', '.join(SCOPES)}")  # fmt: skip
    create.set_defaults(func=cmd_token_create)
    listing = verbs.add_parser("list", help="every token: name, scopes, created, last used")
    listing.set_defaults(func=cmd_token_list)
    revoke = verbs.add_parser("revoke", help="refuse a token from now on (it stays listed)")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(func=cmd_token_revoke)
    for verb in (create, listing, revoke):
        verb.add_argument("--database-url", help="SQLAlchemy URL (default: as `netmon run`)")


def _add_lab(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from netmon.lab.cli import add_parser
    except ImportError:
        return
    add_parser(sub)


def _add_onboard(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from netmon.onboard.cli import add_parser

    add_parser(sub)


def _print_problems(exc: ConfigError) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)


def settings_from(args: argparse.Namespace, **flags: object) -> Settings:
    """The environment's settings under the command line's flags (a ConfigError if invalid)."""
    try:
        settings = Settings.from_env()
    except ConfigError:
        raise
    except ValueError as exc:  # a Settings that does not say which variable: still no traceback
        raise ConfigError([ConfigProblem("environment", None, "", str(exc))]) from exc
    return settings.with_overrides(snmp_profiles=args.snmp_profiles, **flags)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    failed = 0
    for path in args.files or [settings.config]:
        try:
            config = validate(settings.with_overrides(config=path))
        except ConfigError as exc:
            failed += 1
            _print_problems(exc)
            continue
        print(f"{path}: OK ({config.summary})")
        if args.report:
            from netmon.inventory.report import report_lines

            print("\n".join(f"{path}: {line}" if not line.startswith(" ") else line
                            for line in report_lines(config.inventory)))  # fmt: skip
    return EX_CONFIG if failed else 0


def _token_store(args: argparse.Namespace) -> Store:
    """The store `netmon run` would use (same settings and --database-url), migrated."""
    settings = settings_from(argparse.Namespace(snmp_profiles=None),
                             database_url=args.database_url)  # fmt: skip
    url = settings.database_url
    _database_folder(url)
    store = Store(url)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def cmd_token_create(args: argparse.Namespace) -> int:
    from netmon.auth import checked_scopes, create_token

    checked_scopes(args.scope)  # a bad scope is refused before any database is opened
    store = _token_store(args)
    try:
        token = create_token(store, args.name, args.scope)
    finally:
        store.close()
    print(token)
    print(f"token {args.name!r} created; it is shown only this once", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from netmon.auth import list_tokens

    store = _token_store(args)
    try:
        tokens = list_tokens(store)
    finally:
        store.close()
    rows = [("NAME", "SCOPES", "CREATED", "LAST USED", "REVOKED")]
    rows += [(t.name, ",".join(t.scopes), _when(t.created_at), _when(t.last_used_at),
              _when(t.revoked_at)) for t in tokens]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from netmon.auth import revoke_token

    store = _token_store(args)
    try:
        done = revoke_token(store, args.name)
    finally:
        store.close()
    print(f"token {args.name!r} {'revoked' if done else 'was revoked already'}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    probing = {"icmp_mode": args.icmp_mode, "icmp_rate_limit": args.icmp_rate_limit,
               "poller": args.poller}  # fmt: skip
    return _run_server(args, probing)


def cmd_serve(args: argparse.Namespace) -> int:
    return _run_server(args, {"poller": "remote"})  # remote pollers probe (netmon.fleet)


def _run_server(args: argparse.Namespace, flags: dict[str, object]) -> int:
    """``run`` and ``serve``: validate everything, then serve until SIGINT/SIGTERM."""
    settings = settings_from(args, config=args.config, host=args.host, port=args.port,
                             database_url=args.database_url, log_level=args.log_level, **flags)  # fmt: skip
    config = validate(settings)
    _log_to_stderr(settings)
    heap.tune()
    asyncio.run(serve(config))
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from netmon.remote_poller import poll

    settings = settings_from(args, icmp_mode=args.icmp_mode, icmp_rate_limit=args.icmp_rate_limit,
                             log_level=args.log_level)  # fmt: skip
    _log_to_stderr(settings)
    return poll(settings, args.server, args.token_file, args.group, args.outbox)


def _log_to_stderr(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (it re-raises SIGTERM after shutdown, which
    would kill the process before netmon flushes its pending results)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self, sig: signal.Signals) -> None:
        log.info("%s received: shutting down", sig.name)
        self.should_exit = True


class _Reloader:
    """SIGHUP: validate the configuration again (off the event loop, through :func:`validate`,
    like ``run``); on any problem log the same lines and keep running the old inventory."""

    def __init__(self, monitor: Monitor, settings: Settings) -> None:
        self.monitor, self.settings = monitor, settings
        self._task: asyncio.Task[ValidatedConfig | None] | None = None

    def __call__(self) -> None:
        """The signal handler (runs on the loop: it only starts the reload)."""
        if not self.monitor.ready:
            log.warning("reload ignored: still loading history; send SIGHUP again when ready")
        elif self._task is not None and not self._task.done():
            log.warning("reload ignored: the previous reload is still reading the configuration")
        else:
            self._task = asyncio.get_running_loop().create_task(self.reload(), name="reload")

    async def reload(self) -> ValidatedConfig | None:
        """All or nothing: validate and build every probe job first (off the loop); only then
        swap. ``monitor.last_reload`` records the outcome (exported for alerting)."""
        try:
            config = await asyncio.to_thread(self._prepare)
        except ConfigError as exc:
            log.error("reload refused, keeping the running inventory:\n%s", exc)
            self.monitor.last_reload = (False, time.time())
            return None
        before = self.monitor.announced.api.read_requires_token
        await self.monitor.reload(config.inventory, config)  # the poller's engines, too
        traps = getattr(self.monitor, "traps", None)  # netmon.traps, if listening
        if traps is not None and traps.receiver is not None:
            traps.receiver.update(config.inventory)  # who may send traps
        self.monitor.last_reload = (True, time.time())
        log.info("reloaded %s: %s", self.settings.config, config.summary)
        if self.settings.api_read_requires_token is None and (
            config.inventory.api.read_requires_token != before
        ):
            log.warning("api.read_requires_token changed: it takes effect at the next restart")
        return config

    def _prepare(self) -> ValidatedConfig:
        config = validate(self.settings)
        try:
            build_jobs(config.inventory)
        except Exception as exc:  # a kind's job() refusing what validation let through
            problem = ConfigProblem(
                str(self.settings.config), None, "", f"cannot build probe jobs: {exc}"
            )
            raise ConfigError([problem]) from exc
        return config

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def serve(config: ValidatedConfig) -> None:
    """Run the monitor with its API and /metrics until SIGINT/SIGTERM, then flush and exit."""
    from exporters.prometheus import make_registry
    from netmon.api import create_app
    from netmon.api.app import warm_up
    from netmon.api.connections import server_options

    settings = config.settings
    journal = Journal(settings.data_dir / "journal", max_bytes=settings.journal_max_mb << 20)
    store = await _open_store(settings.database_url, journal)
    retention = settings.retention_days * 86400 or None
    monitor = Monitor(config.inventory, store, spill_dir=settings.data_dir / "spill",
                      retention=retention)  # fmt: skip
    monitor.poller = _poller_link(settings, monitor, store)
    monitor.rollups = Rollups(settings.tz, hourly_days=settings.rollup_hourly_days)
    monitor.compactor = Compactor(settings.compact_after_hours)
    try:
        await monitor.poller.open(config)  # every registered kind's engine, where it probes
    except BaseException:
        store.close()
        raise
    icmp_mode = monitor.poller.stats().modes.get("icmp", "none")
    log.info("netmon %s: %s from %s; store %s; ICMP %s; poller %s", __version__, config.summary,
             settings.config, store.safe_url, icmp_mode, settings.poller)  # fmt: skip
    if settings.snapshot_every > 0:
        monitor.snapshot = Snapshotter(settings.data_dir / SNAPSHOT_FILE, settings.snapshot_every)
    registry = make_registry(monitor, __version__, icmp_mode)
    closed = settings.read_requires_token(config.inventory.api.read_requires_token)
    app = create_app(monitor, registry, read_requires_token=closed)
    warming = asyncio.create_task(warm_up(app), name="progress index")  # beside the start
    server = _Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                    log_level=settings.log_level, lifespan="off", access_log=False,
                                    **server_options()))  # fmt: skip
    reloader = _Reloader(monitor, settings)
    traps = await _trap_listener(monitor, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.request_exit, sig)
    loop.add_signal_handler(signal.SIGHUP, reloader)
    try:
        await _serve_until_stopped(server, monitor)
    finally:
        reloader.cancel()
        warming.cancel()
        if traps is not None:
            traps.close()
        log.info("stopping: flushing %d pending results", len(store.pending))
        await monitor.stop()  # the poller's last results, then the store's last flush
        store.close()
        log.info("stopped; %d results written in all", store.written)


async def _trap_listener(monitor: Monitor, settings: Settings) -> asyncio.DatagramTransport | None:
    """The SNMP trap listener (netmon.traps) if NETMON_TRAP_LISTEN names where."""
    if settings.trap_listen is None:
        return None
    from netmon.traps import TrapHints, parse_listen

    host, port = parse_listen(settings.trap_listen)
    try:
        transport = await TrapHints(monitor).listen(host, port)
    except OSError as exc:
        raise NetmonError(
            f"cannot listen for SNMP traps on {settings.trap_listen}: {exc.strerror}"
        ) from exc
    log.info("taking SNMP traps as hints on %s", settings.trap_listen)
    return transport


def _poller_link(settings: Settings, monitor: Monitor, store: Store) -> PollerLink:
    """The server's own poller (``netmon run``), or the remote pollers (``netmon serve``)."""
    from netmon.poller_link import poller_for

    if settings.poller != "remote":
        return poller_for(settings.poller, monitor.record, settings.log_level)
    fleet = Fleet(monitor.record, store, settings.failover_delay)
    fleet.on_change = monitor.rejudge
    # maybe beside other servers on one database: one judging lease (netmon.judging)
    monitor.judging = Judging(monitor, store, fleet, settings.failover_delay)
    return fleet


def _database_folder(url: str) -> None:
    """Create the folder of an SQLite file (a StoreError, one line, if it cannot be)."""
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the database folder {folder}: {exc.strerror}") from exc


async def _open_store(url: str, journal: Journal | None = None) -> Store:
    """The store, its schema migrated. An unreachable PostgreSQL is logged, not fatal: netmon
    probes and journals meanwhile, and the first write that gets through migrates. (An SQLite
    file that cannot be opened is a mistake to fix, not an outage to ride out.)"""
    _database_folder(url)
    store = Store(url, journal=journal)
    try:
        await asyncio.to_thread(store.migrate)
    except StoreUnavailable as exc:
        if url.startswith("sqlite"):
            store.close()
            raise
        log.error("%s: starting anyway; results are journaled until it answers", exc)
    return store


async def _serve_until_stopped(server: _Server, monitor: Monitor) -> None:
    """Serve at once (the API answers 503 "loading" until the windows are refilled), start the
    monitor, and return when the server stops or the start fails (its error is raised)."""
    http = asyncio.create_task(server.serve(), name="http")
    starting = asyncio.create_task(monitor.start(), name="start")
    try:
        await asyncio.wait({http, starting}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start (e.g. the database) ends the run here
            heap.settle()  # what the start built is long-lived (netmon.heap)
            await http
    finally:
        if not starting.done():
            starting.cancel()  # stopped while loading
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        if not http.done():
            server.should_exit = True
            await http


if __name__ == "__main__":
    sys.exit(main())

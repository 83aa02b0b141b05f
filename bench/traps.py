"""SNMP trap receiver costs (netmon.traps): the decoder beside pysnmp's, and a loopback flood.

    python bench/traps.py            # both
    python bench/traps.py --decode   # µs per v2c linkDown: netmon's BER decoder vs pysnmp/pyasn1
    python bench/traps.py --flood    # 10,000 traps/s for 5 s at a receiver process

The flood is sent from this process to a receiver in a child process (``--serve``: the
TrapReceiver on an asyncio loop, as in ``netmon run``'s server) twice: from a known device's
address (every datagram past the device's budget stops at a token count) and from an unknown
one (stops at the address look-up). Reported: the receiver process's CPU (from /proc, children
included: bench/procstat.py), the outcomes it counted, and how late a 10 ms timer on the same
loop fired (what a probe sharing that loop, ``--poller inline``, would feel; with the default
poller process a flood never reaches the poller's loop). snmptrapd is not installed here, so
the reference is pysnmp's decoder, not snmptrapd's whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from procstat import ProcessTree  # noqa: E402

from netmon.inventory import parse_inventory  # noqa: E402
from netmon.traps import TrapReceiver, decode, directory  # noqa: E402
from tests.test_traps import COMMUNITY, RECEIVER_INVENTORY, trap_bytes  # noqa: E402

RATE, SECONDS = 10_000, 5.0


def bench_decode(n: int = 20_000) -> None:
    data = trap_bytes(COMMUNITY)
    start = time.process_time()
    for _ in range(n):
        decode(data)
    ours = (time.process_time() - start) / n * 1e6
    try:
        from pyasn1.codec.ber import decoder
        from pysnmp.proto import api
    except ImportError:
        print(f"decode: netmon {ours:.1f} µs/trap; pysnmp not installed")
        return
    module = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    start = time.process_time()
    for _ in range(n // 10):
        decoder.decode(data, asn1Spec=module.Message())
    theirs = (time.process_time() - start) / (n // 10) * 1e6
    print(f"decode (CPU, {n} traps): netmon {ours:.1f} µs/trap, pysnmp {theirs:.1f} µs/trap "
          f"(x{theirs / ours:.0f})")  # fmt: skip


def serve(port_file: Path) -> None:
    """The receiver process: listen, count, time a 10 ms timer; print JSON at SIGTERM."""
    receiver = TrapReceiver(directory(parse_inventory(RECEIVER_INVENTORY)), lambda e: None)
    late: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: receiver,
                                                           local_addr=("0.0.0.0", 0))  # fmt: skip
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        port_file.write_text(str(transport.get_extra_info("sockname")[1]))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        while not stop.is_set():
            due = time.monotonic() + 0.01
            await asyncio.sleep(0.01)
            late.append(time.monotonic() - due)

    asyncio.run(main())
    late.sort()
    print(json.dumps({"counts": receiver.counts, "late_p99_ms": late[int(len(late) * 0.99)] * 1e3,
                      "late_max_ms": late[-1] * 1e3}))  # fmt: skip


def flood(source: str, tmp: Path) -> None:
    port_file = tmp / f"port-{source}"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            break
        time.sleep(0.05)
    port, tree, data = int(port_file.read_text()), ProcessTree(proc.pid), trap_bytes(COMMUNITY)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        cpu0, t0, sent = tree.sample(), time.monotonic(), 0
        while sent < RATE * SECONDS:  # bounded in count; paced to RATE
            for _ in range(100):
                sock.sendto(data, ("127.0.0.1", port))
            sent += 100
            time.sleep(max(0.0, t0 + sent / RATE - time.monotonic()))
        time.sleep(0.2)
        cpu, wall = tree.sample() - cpu0, time.monotonic() - t0
    proc.send_signal(signal.SIGTERM)
    out = json.loads(proc.communicate(timeout=30)[0])
    print(f"flood from {source} ({'known device' if source == '127.0.0.1' else 'unknown'}): "
          f"{sent} sent in {wall:.1f} s ({sent / wall:.0f}/s); receiver CPU {cpu:.2f} s "
          f"({100 * cpu / wall:.1f} % of a core, {cpu / sent * 1e6:.1f} µs/datagram); "
          f"outcomes {out['counts']}; 10 ms timer late p99 {out['late_p99_ms']:.2f} ms, "
          f"max {out['late_max_ms']:.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decode", action="store_true")
    parser.add_argument("--flood", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.decode or not args.flood:
        bench_decode()
    if args.flood or not args.decode:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for source in ("127.0.0.1", "127.0.0.3"):
                flood(source, Path(tmp))


if __name__ == "__main__":
    main()

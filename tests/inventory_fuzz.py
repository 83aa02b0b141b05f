"""Run ``netmon check-config`` on many files in one process, each under a CPU and memory bound.

    python -m tests.inventory_fuzz CPU_SECONDS MEMORY_MB FILE ...

One JSON line per file: ``{"file", "code", "stdout", "stderr", "failure", "cpu", "rss_mb"}``.
``failure`` is None, ``"cpu"`` (over CPU_SECONDS of CPU time: an ITIMER_PROF alarm, not the
wall clock, so a busy machine cannot fail it), ``"memory"`` (a MemoryError: the address space
is capped at what the process had after a warm-up case plus MEMORY_MB) or the traceback of any
exception ``netmon.cli.main`` let out. ``rss_mb`` is the case's peak resident memory above the
warm-up's (the peak is reset before each case through /proc/self/clear_refs).

One process instead of one per case keeps a corpus of hundreds of cases to seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from netmon.cli import main as netmon

WARM_UP = Path(__file__).parent / "data" / "inventory" / "valid-small.yaml"


class CpuExceeded(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise CpuExceeded


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def run_case(path: Path, cpu_seconds: float) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    code, failure = None, None
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
    start = time.process_time()
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = netmon(["check-config", str(path)])
    except CpuExceeded:
        failure = "cpu"
    except MemoryError:
        failure = "memory"
    except BaseException:  # what the test looks for: anything netmon let out
        failure = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    return {
        "file": str(path), "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
        "failure": failure, "cpu": time.process_time() - start, "rss_kb": _status_kb("VmHWM"),
    }  # fmt: skip


def main(argv: list[str]) -> int:
    cpu_seconds, memory_mb, files = float(argv[0]), int(argv[1]), argv[2:]
    signal.signal(signal.SIGPROF, _alarm)
    run_case(WARM_UP, cpu_seconds)  # imports, pydantic's schemas: not counted against a case
    base_rss = _status_kb("VmRSS")
    limit = _status_kb("VmSize") * 1024 + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    for name in files:
        result = run_case(Path(name), cpu_seconds)
        result["rss_mb"] = (int(str(result.pop("rss_kb"))) - base_rss) / 1024
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

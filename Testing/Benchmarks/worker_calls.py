"""Bench: what a small server call costs the panels, and what polling a training costs, with the connection's one
long-lived worker process against a new worker process per call (how the module worked before).

- latency: from ``runner.submit`` to the panel's callback, for ``server_state`` (``GET /info/`` and the account),
  and the server's own reply time for the same call (``client`` row: the call made directly, no worker);
- polling: CPU seconds per minute (GUI process + workers) of a ``training_status`` poll every 2 s, as the Train
  panel does while a training runs.

Run: ``.venv/bin/python Testing/Benchmarks/worker_calls.py [--calls 30] [--poll-seconds 30]``
"""

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "Python"))  # the Slicer-side test helpers

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from CMRAssistLib.annotation import AnnotationSession  # noqa: E402
from CMRAssistLib.background import BackgroundRunner  # noqa: E402
from CMRAssistLib.client import CMRAssistClient  # noqa: E402
from CMRAssistLib.settings import UserSettings  # noqa: E402


def _call(runner: BackgroundRunner, session: AnnotationSession, method: str) -> None:
    """One call, the event loop idling (as Slicer's does) until its callback quits it."""
    loop = QEventLoop()
    runner.submit("bench", session, method, on_done=lambda _: loop.quit(), on_error=lambda _: loop.quit())
    QTimer.singleShot(60_000, loop.quit)
    loop.exec()


def _idle(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def latency_ms(session: AnnotationSession, calls: int, *, per_call_process: bool) -> list:
    """Milliseconds from submit to callback of ``calls`` ``server_state`` calls, one after the other."""
    runner, out = BackgroundRunner(), []
    for _ in range(calls):
        start = time.perf_counter()
        _call(runner, session, "server_state")
        out.append(1000 * (time.perf_counter() - start))
        if per_call_process:
            runner.worker.stop()  # the next call starts a new process, as every call did before
    runner.shutdown()
    return out


def _cpu(worker_pid: int) -> float:
    """CPU seconds so far of this process, its finished children and the running worker (``/proc``)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + usage.ru_utime + usage.ru_stime
    if worker_pid:
        with open(f"/proc/{worker_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def polling_cpu(session: AnnotationSession, seconds: float, *, per_call_process: bool) -> float:
    """CPU seconds per minute of a 2-s ``training_status`` poll (GUI process and workers), counted from the first
    answer: a long-lived worker's start is paid once per connection, a per-call worker's at every poll."""
    runner = BackgroundRunner()
    _call(runner, session, "training_status")
    pid = 0 if per_call_process else runner.worker.pid()
    if per_call_process:
        runner.worker.stop()
    start, end = _cpu(pid), time.time() + seconds
    while time.time() < end:
        _idle(int(1000 * max(0.0, min(2.0, end - time.time()))))
        _call(runner, session, "training_status")
        if per_call_process:
            runner.worker.stop()
    used = _cpu(pid) - start
    runner.shutdown()
    return 60.0 * used / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--poll-seconds", type=float, default=30.0)
    args = ap.parse_args()
    from cmrassist_server.launcher import RunningServer

    QApplication.instance() or QApplication([])
    folder = tempfile.mkdtemp()
    os.makedirs(os.path.join(folder, "studies"))
    server = RunningServer(os.path.join(folder, "studies"), os.path.join(folder, "model"), os.path.join(folder, "log"))
    try:
        session = AnnotationSession(UserSettings(server.url, "bench", "expert"), folder)
        print(f"# server on loopback; {os.cpu_count()} cores; {args.calls} calls; polling {args.poll_seconds:g} s")
        for name, per_call in (("one worker per connection", False), ("a worker per call (before)", True)):
            ms = latency_ms(session, args.calls, per_call_process=per_call)
            cpu = polling_cpu(session, args.poll_seconds, per_call_process=per_call)
            p90 = sorted(ms)[int(0.9 * len(ms))]
            print(f"{name:28s} call median {statistics.median(ms):7.1f} ms  p90 {p90:7.1f} ms", end="  ")
            print(f"polling {cpu:6.2f} CPU s/min ({100 * cpu / 60:.2f} % of a core)")
        client = CMRAssistClient(server.url)
        direct = []
        for _ in range(args.calls):
            start = time.perf_counter()
            client.info()
            direct.append(1000 * (time.perf_counter() - start))
        print(f"{'client (the reply alone)':28s} call median {statistics.median(direct):7.1f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

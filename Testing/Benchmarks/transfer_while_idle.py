"""Bench: download speed of a 30-frame cine while the GUI thread idles in Qt's event loop holding Python's lock.

Slicer's GUI thread holds the lock while it waits for events (PythonQt's thread support is off). Three ways:

- ``worker process``: the module's way (``CMRAssistLib/background.py``): the download runs in a child process and
  the GUI thread only reads its progress lines;
- ``Python thread + 50 ms poll``: how the module ran jobs before: a Python thread downloads, and a 50 ms timer on
  the GUI thread runs a little Python (the poll), the only moments the thread can take the lock;
- ``Python thread, lock free``: the same thread while the GUI thread releases the lock (PySide6's own event loop):
  what the network and disk allow.

Run: ``.venv/bin/python Testing/Benchmarks/transfer_while_idle.py [--frames 30]``
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from typing import Tuple

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "Python"))  # the Slicer-side test helpers

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from CMRAssistLib.annotation import AnnotationSession  # noqa: E402
from CMRAssistLib.background import BackgroundRunner  # noqa: E402
from CMRAssistLib.client import CMRAssistClient  # noqa: E402
from CMRAssistLib.settings import UserSettings  # noqa: E402


def with_worker_process(url: str, folder: str, idle) -> Tuple[float, float]:
    """Seconds from the request to the end of the download, and of the download alone (its first to its last
    progress report; the rest is the worker's start: a new Python and its imports)."""
    runner, done, reports = BackgroundRunner(), [], []
    session = AnnotationSession(UserSettings(url, "bench", "expert"), folder)
    start = time.perf_counter()

    def progress(fraction: float, text: str) -> None:
        if text.startswith("downloading") and fraction <= 0.8:  # open_study reports 0.3-0.8 while downloading
            reports.append(time.perf_counter())

    runner.submit(
        "download", session, "open_study", "bench_cine", on_done=done.append, on_error=done.append, on_progress=progress
    )
    idle(600_000, until=lambda: bool(done))
    runner.shutdown()
    return reports[-1] - start, reports[-1] - reports[1]


def with_thread(url: str, folder: str, loop_exec, poll_ms: int = 50) -> float:
    """The old way: a Python thread downloads; a 50 ms timer polls it (the only Python the GUI thread runs)."""
    client, done = CMRAssistClient(url), threading.Event()
    thread = threading.Thread(target=lambda: (client.download_image("bench_cine", folder), done.set()), daemon=True)
    loop, poll = QEventLoop(), QTimer()
    poll.setInterval(poll_ms)
    poll.timeout.connect(lambda: done.is_set() and loop.quit())
    start = time.perf_counter()
    thread.start()
    poll.start()
    loop_exec(loop)
    poll.stop()
    return time.perf_counter() - start


def report(name: str, seconds: float, megabytes: float) -> None:
    print(f"{name:<55} {seconds:>8.2f} {megabytes / seconds:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    from cine_phantom import write_big_cine
    from pythonqt_loop import exec_holding_the_lock, idle_like_slicer

    from cmrassist_server.launcher import RunningServer

    app = QApplication.instance() or QApplication([])
    folder = tempfile.mkdtemp()
    cine = write_big_cine(os.path.join(folder, "bench_cine.nii.gz"), frames=args.frames)
    megabytes = os.path.getsize(cine) / 1e6
    os.makedirs(os.path.join(folder, "studies"))
    server = RunningServer(
        os.path.join(folder, "studies"), os.path.join(folder, "model"), os.path.join(folder, "server.log")
    )
    try:
        CMRAssistClient(server.url).upload_image(cine, "bench_cine", {"source": "benchmark"})
        print(f"# {args.frames}-frame cine, {megabytes:.1f} MB compressed; server on loopback; {os.cpu_count()} cores")
        print(f"{'how':<55} {'seconds':>8} {'MB/s':>8}")
        total, transfer = with_worker_process(server.url, tempfile.mkdtemp(), idle_like_slicer)
        report("worker process, GUI idle holding the lock", total, megabytes)
        report("  the same, download alone (after the worker's start)", transfer, megabytes)
        seconds = with_thread(server.url, tempfile.mkdtemp(), exec_holding_the_lock)
        report("Python thread + 50 ms poll, GUI idle holding the lock", seconds, megabytes)
        seconds = with_thread(server.url, tempfile.mkdtemp(), lambda loop: loop.exec())
        report("Python thread + 50 ms poll, lock free (PySide6 loop)", seconds, megabytes)
    finally:
        server.stop()
        app.quit()


if __name__ == "__main__":
    main()

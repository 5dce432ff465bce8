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

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "Python"))  # the Slicer-side test helpers

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from CMRAssistLib.annotation import AnnotationSession  # noqa: E402
from CMRAssistLib.background import BackgroundRunner  # noqa: E402
from CMRAssistLib.client import CMRAssistClient  # noqa: E402
from CMRAssistLib.settings import UserSettings  # noqa: E402


def with_worker_process(url: str, folder: str, idle) -> float:
    runner, done = BackgroundRunner(), []
    session = AnnotationSession(UserSettings(url, "bench", "expert"), folder)
    start = time.perf_counter()
    # open_study also splits the cine into frames: time only the download, up to its last progress report.
    marks = []
    runner.submit(
        "download",
        session,
        "open_study",
        "bench_cine",
        on_done=done.append,
        on_error=done.append,
        on_progress=lambda f, t: f >= 0.8 and not marks and marks.append(time.perf_counter()),
    )
    idle(600_000, until=lambda: bool(done))
    runner.shutdown()
    return (marks[0] if marks else time.perf_counter()) - start


def with_thread(url: str, folder: str, idle, poll_ms) -> float:
    client, done = CMRAssistClient(url), threading.Event()
    thread = threading.Thread(target=lambda: (client.download_image("bench_cine", folder), done.set()), daemon=True)
    poll = QTimer()
    if poll_ms:
        poll.setInterval(poll_ms)
        poll.timeout.connect(lambda: done.is_set())  # the old runner's poll: a little Python every 50 ms
        poll.start()
    start = time.perf_counter()
    thread.start()
    idle(600_000, until=done.is_set)
    poll.stop()
    return time.perf_counter() - start


def pyside_idle(max_ms: int, until) -> None:
    """PySide6's own event loop: the lock is released while Qt waits."""
    loop = QEventLoop()
    QTimer.singleShot(max_ms, loop.quit)
    checker = QTimer()
    checker.setInterval(20)
    checker.timeout.connect(lambda: until() and loop.quit())
    checker.start()
    loop.exec()
    checker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    from cine_phantom import write_big_cine
    from pythonqt_loop import idle_like_slicer

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
        print(f"{'how':<45} {'seconds':>8} {'MB/s':>8}")
        for name, run in (
            (
                "worker process, GUI idle holding the lock",
                lambda: with_worker_process(server.url, tempfile.mkdtemp(), idle_like_slicer),
            ),
            (
                "Python thread + 50 ms poll, GUI idle holding the lock",
                lambda: with_thread(server.url, tempfile.mkdtemp(), idle_like_slicer, 50),
            ),
            (
                "Python thread, lock free (PySide6 loop)",
                lambda: with_thread(server.url, tempfile.mkdtemp(), pyside_idle, 0),
            ),
        ):
            seconds = run()
            print(f"{name:<45} {seconds:>8.2f} {megabytes / seconds:>8.1f}")
    finally:
        server.stop()
        app.quit()


if __name__ == "__main__":
    main()

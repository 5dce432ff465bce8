"""Bench: the longest the GUI thread is held at a time while a 30-frame cine is loaded, segmented and read back.

Everything runs as in Slicer: the module's panels' jobs (worker processes for the server calls and file work,
timer-driven steps for the scene), Slicer's MRML scene and logics (slicer-core), and Qt's event loop holding
Python's lock as Slicer's GUI thread does (``Testing/Python/pythonqt_loop.py``). A 5 ms heartbeat timer on the GUI
thread records when it gets to run; the longest gap between beats is the longest freeze a user would see.

The server is a real CMRAssist server on loopback with the cine in its datastore. With ``--server URL`` of a
server that has a trained model (``make serve``), the segmentation is the model's; without, this script starts a
server on a fresh studies folder (no training here) and the segmentation is the phantom's own 4D label, handed
to the viewer the way a model's answer is.

Run: ``.venv/bin/python Testing/Benchmarks/cine_gui_block.py [--frames 30] [--server URL]``
"""

import argparse
import gc
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "Python"))  # the Slicer-side test helpers

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from CMRAssistLib.annotation import AnnotationSession  # noqa: E402
from CMRAssistLib.background import BackgroundRunner  # noqa: E402
from CMRAssistLib.client import CMRAssistClient  # noqa: E402
from CMRAssistLib.settings import UserSettings  # noqa: E402


class Heartbeat:
    """A 5 ms timer on the GUI thread; ``gaps`` are the times between its beats (what the GUI thread could not do)."""

    def __init__(self, ms: int = 5):
        self.beats, self.timer = [], QTimer()
        self.timer.setInterval(ms)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))

    def gaps_ms(self, start: float, end: float):
        beats = [b for b in self.beats if start <= b <= end]
        return [1000 * (b - a) for a, b in zip(beats, beats[1:])]


STEPS = []  # (end time, duration ms) of every scene step: the module's own share of each GUI block
GC_PAUSES = []  # (end time, duration ms) of Python's garbage collections: the interpreter's share


_GC_STARTED = [0.0]


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _GC_STARTED[0] = time.perf_counter()
    else:
        GC_PAUSES.append((time.perf_counter(), 1000 * (time.perf_counter() - _GC_STARTED[0])))


def timed(steps):
    """The same steps, each ``next()`` timed."""
    while True:
        begin = time.perf_counter()
        try:
            report = next(steps)
        except StopIteration as stop:
            STEPS.append((time.perf_counter(), 1000 * (time.perf_counter() - begin)))
            return stop.value
        STEPS.append((time.perf_counter(), 1000 * (time.perf_counter() - begin)))
        yield report


def flow(runner, session, scene, label_path, use_model, marks, done):
    """open study -> scene steps -> segmentation -> scene steps -> read back; ``marks`` get each phase's end."""

    def mark(name):
        marks.append((name, time.perf_counter()))

    def failed(error):
        done.append(error)

    def read_back(_):
        mark("segmentation shown (GUI steps)")
        runner.steps(
            "export",
            timed(scene.export_label(study[0], tempfile.mkdtemp())),
            on_error=failed,
            on_done=lambda files: (mark("segmentation read back (GUI steps)"), done.append(files)),
        )

    def segmented(result):
        mark("segmentation prepared (worker)")
        runner.steps("show-seg", timed(scene.show_segmentation(*result)), on_done=read_back, on_error=failed)

    def shown(_):
        mark("cine shown (GUI steps)")
        if use_model:
            runner.submit("segment", session, "segment_for_viewer", study[0], None, on_done=segmented, on_error=failed)
        else:
            runner.submit(
                "label",
                session,
                "label_file",
                label_path,
                on_error=failed,
                on_done=lambda label: segmented((study[0], label)),
            )

    study = []

    def loaded(result):
        study.append(result)
        mark("cine downloaded and split (worker)")
        runner.steps("show", timed(scene.show_study(result)), on_done=shown, on_error=failed)

    runner.submit("open", session, "open_study", "bench_cine", on_done=loaded, on_error=failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--server", help="a running server with a trained segmentation model")
    args = parser.parse_args()
    from cine_phantom import write_big_cine, write_cine
    from pythonqt_loop import idle_like_slicer
    from slicer_app import CoreSlicer

    app = QApplication.instance() or QApplication([])
    folder = tempfile.mkdtemp()
    cine = write_big_cine(os.path.join(folder, "bench_cine.nii.gz"), frames=args.frames)
    _, label_path = write_cine(folder, frames=args.frames, shape=(10, 256, 256), name="bench_label")
    server = None
    if args.server:
        url = args.server
    else:
        from cmrassist_server.launcher import RunningServer

        studies = os.path.join(folder, "studies")
        os.makedirs(studies)
        server = RunningServer(studies, os.path.join(folder, "model"), os.path.join(folder, "server.log"))
        url = server.url
    CMRAssistClient(url).upload_image(cine, "bench_cine", {"source": "benchmark"})
    session = AnnotationSession(UserSettings(url, "bench", "expert"), os.path.join(folder, "work"))
    core = CoreSlicer()
    scene = core.cmrassist_scene()
    runner, heartbeat, marks, done = BackgroundRunner(), Heartbeat(), [], []
    gc.callbacks.append(_gc_timer)
    heartbeat.timer.start()
    start = time.perf_counter()
    flow(runner, session, scene, label_path, bool(args.server), marks, done)
    idle_like_slicer(600_000, until=lambda: bool(done))
    heartbeat.timer.stop()
    if server is not None:
        server.stop()
    if not isinstance(done[0], list):
        raise SystemExit(f"failed: {done[0]}")
    report(args, marks, heartbeat, start, platform.processor() or platform.machine())
    core.close()
    app.quit()


def report(args, marks, heartbeat, start, cpu) -> None:
    print(
        f"# {args.frames}-frame cine, 10 x 256 x 256 int16 per frame; {os.cpu_count()} CPU cores ({cpu}); "
        f"Qt event loop holding Python's lock (as Slicer's GUI thread); heartbeat every 5 ms"
    )
    print(f"# segmentation: {'the server model' if args.server else 'the phantom label (no trained model here)'}")
    print("# longest GUI block: longest gap between heartbeats (includes the OS's own pauses on a busy machine);")
    print("# longest step: the longest single scene step of the module, timed around next()")
    print(f"{'phase':<40} {'ends at s':>9} {'longest GUI block ms':>21} {'longest step ms':>16}")
    previous = start
    for name, when in marks:
        gaps = heartbeat.gaps_ms(previous, when)
        steps = [d for end, d in STEPS if previous <= end <= when]
        print(f"{name:<40} {when - start:>9.2f} {max(gaps) if gaps else 0:>21.1f} {max(steps) if steps else 0:>16.1f}")
        previous = when
    gaps = heartbeat.gaps_ms(start, marks[-1][1])
    longest = max(d for _, d in STEPS)
    pauses = [d for end, d in GC_PAUSES if start <= end <= marks[-1][1]]
    print(f"# Python's own garbage collections in the flow: {len(pauses)}, longest {max(pauses, default=0):.1f} ms")
    print(f"{'whole flow':<40} {marks[-1][1] - start:>9.2f} {max(gaps):>21.1f} {longest:>16.1f}")


if __name__ == "__main__":
    main()

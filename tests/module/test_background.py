"""Background jobs as Slicer runs them: worker processes for server calls, timer-driven steps for scene work.

Findings 5 and 6 of issue 11: one raising callback or a modal question inside a callback must not stall the other
jobs; and a transfer must advance while the GUI thread idles in Qt's event loop holding Python's lock.
"""

import os
import signal
import socket
import threading
import time

import pytest
from panel_helpers import wait_for
from PySide6.QtCore import QEventLoop, QTimer
from pythonqt_loop import idle_like_slicer

from CMRAssistLib.annotation import AnnotationSession
from CMRAssistLib.background import BackgroundRunner, Cancelled
from CMRAssistLib.client import CMRAssistClient, ServerError
from CMRAssistLib.settings import UserSettings


def steps_of(n: int, pause: float = 0.0, result="done"):
    for i in range(n):
        time.sleep(pause)
        yield (i + 1) / n, f"step {i + 1}"
    return result


def modal(ms: int) -> None:
    """What a modal dialog does inside a callback: a nested event loop until the user answers."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def test_a_callback_that_raises_does_not_stop_the_other_jobs(app):
    runner = BackgroundRunner()
    done = []

    def broken(result):
        raise RuntimeError("a panel bug")

    runner.steps("a", steps_of(1), on_done=broken, on_error=done.append)
    for name in ("b", "c"):
        runner.steps(name, steps_of(3), on_done=lambda r, name=name: done.append(name), on_error=done.append)
    wait_for(app, lambda: not runner.busy(), timeout=10, what="the jobs")
    assert sorted(done) == ["b", "c"] and [str(e) for e in runner.callback_errors] == ["a panel bug"]
    runner.shutdown()


def test_other_jobs_finish_while_a_callback_shows_a_modal_question(app, runner):
    done = []
    # A finishes first and asks a question (a nested event loop); B, still working, finishes meanwhile and is
    # delivered at once (a training display keeps moving), not when the question is answered.
    runner.steps("a", steps_of(1), on_done=lambda r: (modal(800), done.append("a")), on_error=done.append)
    runner.steps("b", steps_of(10, 0.01), on_done=lambda r: done.append("b"), on_error=done.append)
    wait_for(app, lambda: not runner.busy(), timeout=20, what="both jobs")
    assert done == ["b", "a"]


def test_a_step_that_opens_a_modal_dialog_is_not_re_entered(app, runner):
    def asking():
        yield 0.5, "asking"
        modal(200)  # the job's timer keeps firing inside this nested loop
        yield 1.0, "answered"
        return "asked once"

    results = []
    runner.steps("ask", asking(), on_done=results.append, on_error=results.append)
    wait_for(app, lambda: results, timeout=10, what="the job")
    assert results == ["asked once"]


def test_a_worker_reports_a_server_error_with_its_status(app, runner, tmp_path):
    from cmrassist_server.launcher import free_port

    session = AnnotationSession(UserSettings(f"http://127.0.0.1:{free_port()}", "Ada", "expert"), str(tmp_path))
    errors = []
    runner.submit("connect", session, "server_state", on_done=errors.append, on_error=errors.append)
    wait_for(app, lambda: errors, timeout=30, what="the worker's answer")
    assert isinstance(errors[0], ServerError) and errors[0].status == 0 and "cannot reach server" in str(errors[0])


def _silent_server():
    """Accepts connections and never answers: a call to it waits for its timeout."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    return silent


def _worker_processes() -> list:
    """Pids of this test process's ``CMRAssistLib.worker`` children (read from /proc, as ``ps`` would)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"CMRAssistLib.worker" in cmdline and parent == os.getpid():
            found.append(int(pid))
    return found


def test_cancel_answers_at_once_and_the_worker_stays_for_the_next_call(app, runner, tmp_path):
    silent = _silent_server()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    errors = []
    session = AnnotationSession(UserSettings(url, "Ada", "expert"), str(tmp_path))
    job = runner.submit("status", session, "training_status", on_done=errors.append, on_error=errors.append)
    wait_for(app, lambda: runner.worker.running(), timeout=10, what="the worker's start")
    job.cancel()
    assert isinstance(errors[0], Cancelled) and not runner.busy()  # answered now, not when the call gives up
    from cmrassist_server.launcher import free_port

    closed = AnnotationSession(UserSettings(f"http://127.0.0.1:{free_port()}", "Ada", "expert"), str(tmp_path))
    runner.submit("connect", closed, "server_state", on_done=errors.append, on_error=errors.append)
    wait_for(app, lambda: len(errors) == 2, timeout=30, what="the next call")
    assert isinstance(errors[1], ServerError) and runner.worker.starts == 1
    silent.close()


def test_one_worker_answers_a_hundred_small_calls(app, server, runner, tmp_path):
    session = AnnotationSession(UserSettings(server.url, "Ada", "expert"), str(tmp_path))
    answers, seen = [], set()
    for _ in range(100):
        runner.submit("state", session, "server_state", on_done=answers.append, on_error=answers.append)
    while len(answers) < 100:
        wait_for(app, lambda: len(answers) == 100 or runner.worker.running(), timeout=60, what="the calls")
        seen.update(_worker_processes())
        app.processEvents()
    assert all(not isinstance(a, Exception) for a in answers), [a for a in answers if isinstance(a, Exception)][:3]
    assert runner.worker.starts == 1 and seen == {runner.worker.pid()}


def test_a_killed_worker_fails_its_call_with_a_message_and_the_next_call_works(app, runner, tmp_path):
    silent = _silent_server()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    answers = []
    session = AnnotationSession(UserSettings(url, "Ada", "expert"), str(tmp_path))
    runner.submit("status", session, "training_status", on_done=answers.append, on_error=answers.append)
    wait_for(app, lambda: runner.worker.running() and _worker_processes(), timeout=10, what="the worker's start")
    time.sleep(0.5)  # the call is in flight, waiting on the silent server
    os.kill(runner.worker.pid(), signal.SIGKILL)
    wait_for(app, lambda: answers, timeout=10, what="the lost call's answer")
    assert isinstance(answers[0], RuntimeError) and "the worker process stopped" in str(answers[0])
    assert "status was lost: try it again" in str(answers[0]) and not runner.busy()
    from cmrassist_server.launcher import free_port

    closed = AnnotationSession(UserSettings(f"http://127.0.0.1:{free_port()}", "Ada", "expert"), str(tmp_path))
    runner.submit("connect", closed, "server_state", on_done=answers.append, on_error=answers.append)
    wait_for(app, lambda: len(answers) == 2, timeout=30, what="the next call")
    assert isinstance(answers[1], ServerError) and "cannot reach server" in str(answers[1])
    assert runner.worker.starts == 2
    silent.close()


@pytest.fixture(scope="module")
def big_cine(server, tmp_path_factory):
    """A 30-frame cine of 10 slices of 256 x 256 voxels (noisy, so it compresses little) stored on the server."""
    from cine_phantom import write_big_cine

    path = write_big_cine(str(tmp_path_factory.mktemp("big") / "big_cine.nii.gz"))
    CMRAssistClient(server.url).upload_image(path, "big_cine", {"source": "transfer test"})
    return path


def test_a_download_advances_while_the_gui_thread_idles_holding_pythons_lock(app, server, big_cine, tmp_path):
    runner = BackgroundRunner()
    session = AnnotationSession(UserSettings(server.url, "Ada", "expert"), str(tmp_path))
    progress, studies, gui = [], [], threading.current_thread()
    runner.submit(
        "download",
        session,
        "open_study",
        "big_cine",
        on_done=studies.append,
        on_error=studies.append,
        on_progress=lambda f, t: progress.append((f, threading.current_thread() is gui)),
    )
    idle_like_slicer(120_000, until=lambda: bool(studies))  # no Python runs here but the job's own callbacks
    assert studies and studies[0].n_frames == 30 and len(studies[0].frame_files) == 30
    fractions = [f for f, _ in progress]
    assert len([f for f in fractions if 0.3 < f < 0.8]) >= 10  # the download reported in many steps
    assert fractions == sorted(fractions) and all(on_gui for _, on_gui in progress)
    runner.shutdown()


def test_a_python_thread_does_not_advance_while_the_gui_thread_idles_holding_pythons_lock(
    app, server, big_cine, tmp_path
):
    """Why the worker is a process: the same download on a Python thread (how jobs ran before) is stuck."""
    client = CMRAssistClient(server.url)
    chunks, stop = [], threading.Event()

    def download():
        client.download_image("big_cine", str(tmp_path), lambda f: chunks.append(f))
        stop.set()

    thread = threading.Thread(target=download, daemon=True)
    thread.start()
    wait = time.time() + 10
    while not chunks and time.time() < wait:  # until the transfer runs (this wait releases the lock)
        time.sleep(0.01)
    marks = []  # chunks read, seen from the GUI thread 0.1 s and 1.1 s into the idle time
    QTimer.singleShot(100, lambda: marks.append(len(chunks)))
    QTimer.singleShot(1100, lambda: marks.append(len(chunks)))
    idle_like_slicer(1200)
    during = marks[1] - marks[0]
    thread.join(60)
    # A second of idling did a small part of a download that the thread finishes once the lock is free (each read
    # needs the GUI thread to run Python for the thread to get the lock back): quiet machines see under a tenth,
    # a loaded 2-core machine about a fifth (the GUI thread runs Python more often when it is descheduled less).
    assert stop.is_set() and during * 3 < len(chunks), (during, len(chunks))

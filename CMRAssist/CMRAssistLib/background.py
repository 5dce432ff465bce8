"""Long work without blocking Slicer's GUI thread: server calls in a worker process, scene work in short steps.

Slicer does not enable PythonQt's thread support: the GUI thread holds Python's lock even while it idles in Qt's
event loop, so a Python worker thread advances only while the GUI thread happens to run Python. So:

- network and file work (downloads, uploads, reading a compressed cine) runs in one long-lived child Python
  process per connection (``worker.py`` through ``worker_process.WorkerProcess``), several calls at once, each
  with an id: Qt reads its output in C++, and the child runs at full speed;
- work on the MRML scene (building a cine's sequences, one frame at a time) runs on the GUI thread as a
  generator whose steps a ``QTimer`` drives, so the GUI repaints and takes input between steps.

Callbacks run on the GUI thread. One that raises is logged and kept in ``callback_errors``: it never stops the
other jobs' callbacks, and a callback that opens a modal dialog (a nested event loop) cannot re-enter a step.
"""

import json
import logging
import shutil
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .annotation import AnnotationSession
from .qt_compat import BINDING, QTimer
from .worker import decode, error_from, request
from .worker_process import WorkerProcess

Progress = Optional[Callable[[float, str], None]]


class Cancelled(Exception):
    """The user cancelled the job."""


def worker_python() -> str:
    """Slicer's ``PythonSlicer`` inside Slicer (it is on Slicer's PATH), this interpreter elsewhere."""
    if BINDING == "PythonQt":
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


class Job:
    """Handle of one background job: its name, and a way to cancel it."""

    def __init__(self, name: str):
        self.name = name
        self.cancelled = False
        self.finished = False
        self._stop: Callable[[], None] = lambda: None
        self._keep: List[Any] = []  # the QTimer of scene steps, alive until the job is over

    def cancel(self) -> None:
        if not self.finished and not self.cancelled:
            self.cancelled = True
            self._stop()


class BackgroundRunner:
    """Starts jobs and calls their callbacks on the GUI thread.

    Args:
        python: interpreter for worker processes (see :func:`worker_python`).
    """

    def __init__(self, *, python: Optional[str] = None):
        self.python = python or worker_python()
        self.callback_errors: List[BaseException] = []
        self._jobs: List[Job] = []
        self._closed = False
        self.worker = WorkerProcess(self.python, self._event, self._worker_ended)
        self._calls: Dict[int, Tuple[Job, Callable, Callable, Progress]] = {}  # by request id, until answered
        self._next_id = 0

    # -- starting jobs ----------------------------------------------------------------------------------------
    def submit(
        self,
        name: str,
        session: AnnotationSession,
        method: str,
        *args: Any,
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_progress: Progress = None,
        **kwargs: Any,
    ) -> Job:
        """Run ``session.<method>(*args, **kwargs)`` in the connection's worker process; then ``on_done(result)``
        or ``on_error(exception)`` here. The session's own ``progress`` reports reach ``on_progress``."""
        self._next_id += 1
        ident = self._next_id
        body = request(session, method, args, kwargs, ident)
        job = self._start(name)
        self._calls[ident] = (job, on_done, on_error, on_progress)
        job._stop = lambda: self._cancel_call(ident)
        self.worker.send(body)
        return job

    def steps(
        self,
        name: str,
        steps: Iterator[Any],
        *,
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_progress: Progress = None,
    ) -> Job:
        """Drive a generator on the GUI thread, one ``next()`` per timer tick; each yielded ``(fraction, text)``
        goes to ``on_progress``; the generator's return value to ``on_done``."""
        job = self._start(name)
        timer = QTimer()
        timer.setInterval(0)
        running = [False]  # a step that opens a modal dialog must not be re-entered by the nested event loop

        def tick() -> None:
            if running[0] or job.finished:
                return
            running[0] = True
            try:
                self._step(job, steps, timer, on_done, on_error, on_progress)
            finally:
                running[0] = False

        timer.timeout.connect(tick)
        job._stop = lambda: None  # the next tick sees ``cancelled``
        job._keep.append(timer)
        timer.start()
        return job

    def busy(self, name: Optional[str] = None) -> bool:
        return any(name is None or job.name == name for job in self._jobs)

    def cancel_all(self) -> None:
        for job in list(self._jobs):
            job.cancel()

    def shutdown(self) -> None:
        """Cancel what runs (module closed); callbacks of unfinished jobs are dropped."""
        self._closed = True
        for job in list(self._jobs):
            job.cancel()
            for kept in job._keep:
                kept.stop()
        self._jobs = []
        self.worker.stop()

    # -- internals ----------------------------------------------------------------------------------------------
    def _start(self, name: str) -> Job:
        if self._closed:
            raise RuntimeError("the background runner has been shut down")
        job = Job(name)
        self._jobs.append(job)
        return job

    def _step(self, job: Job, steps: Iterator[Any], timer, on_done, on_error, on_progress: Progress) -> None:
        if job.cancelled:
            timer.stop()
            steps.close()
            self._deliver(job, on_error, Cancelled(f"{job.name} cancelled"))
            return
        try:
            report = next(steps)
        except StopIteration as stop:
            timer.stop()
            self._deliver(job, on_done, stop.value)
            return
        except Exception as error:
            timer.stop()
            self._deliver(job, on_error, error)
            return
        if on_progress and report:
            self._call(on_progress, *report)

    def _event(self, event: Dict[str, Any]) -> None:
        """An event of the worker: progress, or the answer, of the call with that id (late ones are dropped)."""
        call = self._calls.get(event.get("id"))
        if call is None:
            return
        job, on_done, on_error, on_progress = call
        if "progress" in event:
            if on_progress and not job.cancelled:
                self._call(on_progress, event["progress"], event.get("text", ""))
            return
        del self._calls[event["id"]]
        if "result" in event:
            self._deliver(job, on_done, decode(event["result"]))
        elif "error" in event:
            self._deliver(job, on_error, error_from(event["error"]))

    def _cancel_call(self, ident: int) -> None:
        """Tell the worker to stop the call, and answer the panel now: the call's late answer is dropped."""
        job, _, on_error, _ = self._calls.pop(ident)
        if self.worker.running():
            self.worker.send(json.dumps({"id": ident, "cancel": True}).encode() + b"\n")
        self._deliver(job, on_error, Cancelled(f"{job.name} cancelled"))

    def _worker_ended(self, reason: str) -> None:
        """The worker died with calls in flight: each fails with the reason; the next call starts a new worker."""
        calls, self._calls = self._calls, {}
        for job, _, on_error, _ in calls.values():
            self._deliver(job, on_error, RuntimeError(f"{reason}; {job.name} was lost: try it again"))

    def _deliver(self, job: Job, callback: Callable[[Any], None], value: Any) -> None:
        """Finish ``job`` first (so ``busy`` is already right inside the callback), then call the callback."""
        job.finished = True
        if job in self._jobs:
            self._jobs.remove(job)
        # Qt objects are dropped on a later turn of the event loop, not inside their own signal.
        QTimer.singleShot(0, job._keep.clear)
        if not self._closed:
            self._call(callback, value)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception as error:  # one panel's bug must not stop the other jobs' callbacks
            logging.exception("CMRAssist: a background job's callback failed")
            self.callback_errors.append(error)

"""Run network and long work off the GUI thread, and hand results back on it.

A worker thread runs the job; a ``QTimer`` on the GUI thread polls it and calls the callbacks there, so
panels never touch widgets from another thread. This works the same under Slicer's PythonQt and PySide6
(neither needs custom signals).
"""

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, List, Optional, Tuple

from .qt_compat import QTimer


class Cancelled(Exception):
    """Raised inside a job when the user cancelled it."""


class Job:
    """Handle of one background job, also passed to the job's function.

    The function calls :meth:`report` with its progress and :meth:`check_cancelled` between steps.
    """

    def __init__(self, name: str):
        self.name = name
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress: Optional[Tuple[float, str]] = None
        self.future: Optional[Future] = None

    def report(self, fraction: float, text: str = "") -> None:
        with self._lock:
            self._progress = (max(0.0, min(1.0, float(fraction))), text)

    def take_progress(self) -> Optional[Tuple[float, str]]:
        with self._lock:
            progress, self._progress = self._progress, None
        return progress

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(f"{self.name} cancelled")

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()


class BackgroundRunner:
    """Runs jobs on worker threads; callbacks run on the thread that owns the runner (the GUI thread).

    Args:
        poll_ms: how often the GUI thread looks at running jobs.
        workers: worker threads (2: a long training poll never blocks a download).
    """

    def __init__(self, *, poll_ms: int = 50, workers: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="CMRAssist")
        self._running: List[Tuple[Job, Callable, Callable, Optional[Callable]]] = []
        self._timer = QTimer()
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        self._closed = False

    def submit(self, name: str, fn: Callable[[Job], Any], *, on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None], on_progress: Optional[Callable[[float, str], None]] = None,
               ) -> Job:
        """Start ``fn(job)`` on a worker; later ``on_done(result)`` or ``on_error(exception)`` on this thread."""
        if self._closed:
            raise RuntimeError("the background runner has been shut down")
        job = Job(name)
        job.future = self._pool.submit(fn, job)
        self._running.append((job, on_done, on_error, on_progress))
        if not self._timer.isActive():
            self._timer.start()
        return job

    def busy(self, name: Optional[str] = None) -> bool:
        return any(name is None or job.name == name for job, *_ in self._running)

    def cancel_all(self) -> None:
        for job, *_ in self._running:
            job.cancel()

    def shutdown(self) -> None:
        """Cancel what runs and stop polling (module closed); callbacks of unfinished jobs are dropped."""
        self.cancel_all()
        self._closed = True
        self._timer.stop()
        self._running = []
        self._pool.shutdown(wait=False)

    def _poll(self) -> None:
        current, self._running = self._running, []  # callbacks may submit new jobs into the fresh list
        still = []
        for entry in current:
            job, on_done, on_error, on_progress = entry
            progress = job.take_progress()
            if progress and on_progress:
                on_progress(*progress)
            if not job.done:
                still.append(entry)
                continue
            error = job.future.exception()
            if error is None and job.cancelled:
                error = Cancelled(f"{job.name} cancelled")  # the answer came after the user gave up on it
            if error is None:
                on_done(job.future.result())
            else:
                on_error(error)
        self._running = [] if self._closed else still + self._running
        if not self._running:
            self._timer.stop()

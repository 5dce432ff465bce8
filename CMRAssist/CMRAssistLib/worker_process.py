"""The one long-lived worker process of a connection: started on the first call, kept, restarted after a crash.

Requests go to its standard input as JSON lines with ids; Qt reads its output in C++ and each ``readyRead`` hands
the complete event lines to ``on_event``. When the process ends while calls are in flight (killed, crashed, out of
memory), ``on_exit`` says why, so the runner can fail exactly those calls; the next call starts a new process.
"""

import os
from typing import Any, Callable, Dict, List, Optional

from .qt_compat import QProcess
from .worker import parse_event

#: The folder that holds CMRAssistLib: the worker runs ``-m CMRAssistLib.worker`` from there.
MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerProcess:
    """A ``QProcess`` running ``CMRAssistLib.worker``, kept between calls.

    Args:
        python: the interpreter (Slicer's ``PythonSlicer`` inside Slicer).
        on_event: called with each event the worker writes (GUI thread).
        on_exit: called with a reason when the process ends or cannot start (GUI thread).
    """

    def __init__(self, python: str, on_event: Callable[[Dict[str, Any]], None], on_exit: Callable[[str], None]):
        self.python = python
        self.on_event, self.on_exit = on_event, on_exit
        self.starts = 0  # processes started so far (one per connection unless one died)
        self._process: Optional[Any] = None
        self._pending = b""  # an output line may come in pieces
        self._stopping = False

    def running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.NotRunning

    def pid(self) -> int:
        return int(self._process.processId()) if self.running() else 0

    def send(self, line: bytes) -> None:
        """Write one request line, starting the process first when none runs."""
        if not self.running():
            self._start()
        self._process.write(line)

    def stop(self, wait_ms: int = 2000) -> None:
        """End the process: close its input (it finishes what runs), then kill it if it has not ended in time."""
        process, self._process = self._process, None
        if process is None:
            return
        self._stopping = True
        process.closeWriteChannel()
        if not process.waitForFinished(wait_ms):
            process.kill()
            process.waitForFinished(1000)
        self._stopping = False

    def _start(self) -> None:
        process = QProcess()
        process.setProgram(self.python)
        process.setArguments(["-u", "-m", "CMRAssistLib.worker"])
        process.setWorkingDirectory(MODULE_DIR)
        process.readyReadStandardOutput.connect(lambda: self._read(process))
        process.finished.connect(lambda *_: self._ended(process))
        process.errorOccurred.connect(lambda *_: self._failed(process))
        self._process, self._pending = process, b""
        self.starts += 1
        process.start()

    def _read(self, process) -> None:
        data = self._pending + bytes(process.readAllStandardOutput().data())
        *lines, self._pending = data.split(b"\n")
        events: List[Dict[str, Any]] = []
        for line in lines:
            event = parse_event(line.decode("utf-8", "replace").rstrip("\r"))
            if event is not None:
                events.append(event)
        for event in events:
            self.on_event(event)

    def _ended(self, process) -> None:
        self._read(process)
        if process is self._process:
            self._process = None
        if not self._stopping:
            stderr = bytes(process.readAllStandardError().data()).decode("utf-8", "replace").strip()
            last = stderr.splitlines()[-1] if stderr else f"exit code {process.exitCode()}"
            self.on_exit(f"the worker process stopped ({last})")

    def _failed(self, process) -> None:
        if process.error() == QProcess.FailedToStart:
            if process is self._process:
                self._process = None
            self.on_exit(f"cannot start the worker process {self.python}")

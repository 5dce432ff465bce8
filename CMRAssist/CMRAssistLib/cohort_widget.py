"""The Train panel's cohort row: start a cohort run of every study on the server (``POST /batch/analyse``) and
follow its progress; the run itself is the server's child process (``cmrassist analyse``)."""

from typing import Any, Dict

from .annotation import AnnotationSession
from .background import BackgroundRunner
from .qt_compat import QComboBox, QHBoxLayout, QLabel, QPushButton, QTimer, QVBoxLayout, QWidget

#: Frames choices as shown, and the request's value.
FRAME_CHOICES = (("every frame", "all"), ("ED and ES", "ed-es"))


def describe_cohort(status: Dict[str, Any]) -> str:
    """One line: the run's state, subjects done and failed of the total, its speed and time left; when done,
    the subject to review first; when failed, why."""
    state = status.get("state", "none")
    if state == "none":
        return "No cohort run yet."
    progress = status.get("progress") or {}
    counts = ""
    if progress.get("total") is not None:
        finished = progress.get("done", 0) + progress.get("failed", 0) + progress.get("skipped", 0)
        counts = f"{finished}/{progress['total']} subjects ({progress.get('failed', 0)} failed)"
    if state == "running":
        parts = ["Cohort run: " + (counts or "starting ...")]
        if progress.get("studies_per_s"):
            parts.append(f"{progress['studies_per_s'] * 60:.1f} studies/min")
        if progress.get("eta_s") is not None and progress.get("remaining"):
            parts.append(f"about {max(1, round(progress['eta_s'] / 60))} min left")
        return ", ".join(parts)
    if state == "done":
        run = status.get("run") or {}
        first = run.get("review_first")
        return f"Cohort run done: {counts}." + (f" Review first: {first}." if first else "")
    if state == "failed":
        return f"Cohort run failed: {status.get('error', 'no reason given')}"
    return f"Cohort run stopped at {counts}." if counts else "Cohort run stopped."


class CohortWidget:
    """*Analyse all studies* with a frames choice and a status line, polled while a run goes on.

    Args:
        session: the annotation session.
        runner: runs the server calls in the worker process.
        poll_ms: how often the run's status is read while it runs.
        gate: the panel's role gate (starting a run needs the admin role); none: no role checks here.
    """

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner, *, poll_ms: int = 3000, gate=None):
        self.session, self.runner, self.gate = session, runner, gate
        self.connected = self.running = False
        self.widget = QWidget()
        layout = QVBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.start_button = QPushButton("Analyse all studies")
        self.start_button.toolTip = (
            "Segment, check and measure every study on the server (one row per subject, "
            "a review queue for the 'qc' strategy); resumes where a stopped run ended"
        )
        self.frames_combo = QComboBox()
        for text, _ in FRAME_CHOICES:
            self.frames_combo.addItem(text)
        row.addWidget(self.start_button)
        row.addWidget(self.frames_combo)
        layout.addLayout(row)
        self.status_label = QLabel("Connect to a server to analyse its studies.")
        self.status_label.wordWrap = True
        layout.addWidget(self.status_label)
        self.poll_timer = QTimer()
        self.poll_timer.setInterval(poll_ms)
        self.poll_timer.timeout.connect(self.poll)
        self.start_button.clicked.connect(lambda *_: self.start())
        if gate is not None:
            gate.add(self.start_button, "admin", "start a cohort run")
        self._update()

    def _update(self) -> None:
        self.start_button.enabled = self.connected and not self.running
        if self.gate is not None:
            self.gate.apply()

    def set_connected(self, connected: bool) -> None:
        """Follow the connection; a run started elsewhere (another user, the command line) shows up at once."""
        self.connected = connected
        self._update()
        if connected:
            self.poll()

    def start(self) -> None:
        frames = FRAME_CHOICES[max(0, self.frames_combo.currentIndex)][1]
        self.running = True
        self._update()
        self.status_label.text = "Starting the cohort run ..."
        self.runner.submit(
            "cohort-start", self.session, "start_cohort", frames=frames, on_done=self._show, on_error=self._failed
        )

    def poll(self) -> None:
        if self.connected and not self.runner.busy("cohort-status"):
            self.runner.submit(
                "cohort-status", self.session, "cohort_status", on_done=self._show, on_error=self._failed
            )

    def _show(self, status: Dict[str, Any]) -> None:
        self.running = status.get("state") == "running"
        self.status_label.text = describe_cohort(status)
        if self.running and not self.poll_timer.active:
            self.poll_timer.start()
        elif not self.running:
            self.poll_timer.stop()
        self._update()

    def _failed(self, error: BaseException) -> None:
        self.poll_timer.stop()
        self.running = False
        self.status_label.text = f"Cohort run request failed: {error}"
        self._update()

"""Small widget groups that several panels share, and the plumbing of a panel that runs background jobs."""

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .account import Account, role_refusal_note
from .background import BackgroundRunner, Cancelled, Job
from .qt_compat import QHBoxLayout, QLabel, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout


def add_busy_row(layout: QVBoxLayout) -> Tuple[QProgressBar, QPushButton, QLabel]:
    """A progress bar with a Cancel button beside it, and a wrapping message line below; added to ``layout``."""
    row = QHBoxLayout()
    progress_bar = QProgressBar()
    progress_bar.setRange(0, 100)
    cancel_button = QPushButton("Cancel")
    row.addWidget(progress_bar)
    row.addWidget(cancel_button)
    layout.addLayout(row)
    message_label = QLabel("")
    message_label.wordWrap = True
    message_label.objectName = "message"
    layout.addWidget(message_label)
    return progress_bar, cancel_button, message_label


class JobPanel:
    """Plumbing of a panel that runs one background job at a time with a progress bar, Cancel and a message line.

    Subclasses set ``session``, ``runner``, ``progress_bar``, ``cancel_button`` and ``message_label`` and implement
    ``_update_buttons``. A job is a session call in the worker process (:meth:`_call`) or scene steps on the GUI
    thread (:meth:`_steps`); an ``on_done`` may start the next one (a download, then building the scene).
    """

    session: Any
    runner: BackgroundRunner
    job: Optional[Job] = None
    failure_prefix = "Failed"

    def _update_buttons(self) -> None:
        raise NotImplementedError

    def _call(
        self, name: str, method: str, *args: Any, on_done: Callable[[Any], None], text: str, **kwargs: Any
    ) -> None:
        """Run ``session.<method>(*args, **kwargs)`` in the worker process."""
        self._begin(
            text,
            on_done,
            lambda done, failed: self.runner.submit(
                name, self.session, method, *args, on_done=done, on_error=failed, on_progress=self._progress, **kwargs
            ),
        )

    def _steps(self, name: str, steps: Iterator[Any], on_done: Callable[[Any], None], text: str) -> None:
        """Run scene steps (a generator) on the GUI thread, one per event-loop turn."""
        self._begin(
            text,
            on_done,
            lambda done, failed: self.runner.steps(
                name, steps, on_done=done, on_error=failed, on_progress=self._progress
            ),
        )

    def _begin(self, text: str, on_done: Callable[[Any], None], start: Callable[[Callable, Callable], Job]) -> None:
        self.message_label.text = text
        self.progress_bar.value = 0
        started: List[Job] = []  # a job replaced by a newer one must not touch the panel
        job = start(
            lambda result: self._finish(on_done, result, started[0]), lambda error: self._failed(error, started[0])
        )
        started.append(job)
        self.job = job
        self._update_buttons()

    def _progress(self, fraction: float, text: str) -> None:
        self.progress_bar.value = int(round(100 * fraction))
        if text:
            self.message_label.text = text

    def _finish(self, on_done: Callable[[Any], None], result: Any, job: Optional[Job] = None) -> None:
        if job is not None and job is not self.job:
            return
        self.job = None
        self.progress_bar.value = 100
        try:
            on_done(result)
        finally:
            self._update_buttons()

    def _failed(self, error: BaseException, job: Optional[Job] = None) -> None:
        if job is not None and job is not self.job:
            return
        self.job = None
        self.progress_bar.value = 0
        self.message_label.text = "Cancelled." if isinstance(error, Cancelled) else f"{self.failure_prefix}: {error}"
        self._update_buttons()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.message_label.text = f"Cancelling {self.job.name} ..."

    def scene_closed(self) -> None:
        """File > Close Scene: the study's nodes are gone. Stop what runs (its answer is dropped), forget the study
        (:meth:`_forget_study`) and say what to do, so no button acts on nodes that no longer exist."""
        job, self.job = self.job, None
        if job is not None:
            job.cancel()
        self._forget_study()
        self.progress_bar.value = 0
        self.message_label.text = "The scene was closed: load a study again to go on."
        self._update_buttons()

    def _forget_study(self) -> None:
        """Drop what the panel holds of the closed scene's study (panels that hold one override this)."""


def fill_table(table: QTableWidget, rows: Sequence[List[str]]) -> None:
    """Replace a read-only table's rows with ``rows`` (text cells) and fit the columns."""
    table.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, text in enumerate(values):
            table.setItem(r, c, QTableWidgetItem(text))
    table.resizeColumnsToContents()


class RoleGate:
    """Buttons whose work needs a role: off for an account without it, their tooltip and a note saying which role.

    A panel enables its buttons for its own reasons first, then calls :meth:`apply`, which only ever turns buttons
    off; so any number of calls, from any widget sharing the gate, agree.
    """

    def __init__(self) -> None:
        self.account = Account()  # a server without sign-in allows everything
        self.buttons: List[Tuple[Any, str, str, str]] = []  # (button, role, what it does, its own tooltip)
        self.label = QLabel("")
        self.label.wordWrap = True
        self.label.objectName = "roleNote"
        self.label.visible = False

    def add(self, button, role: str, action: str) -> None:
        """``button`` does ``action`` (``"accept a version"``), which needs ``role``."""
        self.buttons.append((button, role, action, button.toolTip))

    def allows(self, button) -> bool:
        return all(self.account.allows(role) for b, role, _, _ in self.buttons if b is button)

    def set_account(self, account: Account) -> None:
        self.account = account
        self.apply()

    def apply(self) -> None:
        refused: Dict[str, List[str]] = {}
        for button, role, action, tip in self.buttons:
            if self.account.allows(role):
                button.toolTip = tip
                continue
            button.enabled = False
            button.toolTip = (
                f"{tip}\n\nOff: {self.account.needs(role)}." if tip else f"Off: {self.account.needs(role)}."
            )
            if action not in refused.setdefault(role, []):
                refused[role].append(action)
        note = role_refusal_note(self.account, refused)
        self.label.text = note
        self.label.visible = bool(note)

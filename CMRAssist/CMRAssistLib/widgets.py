"""Small widget groups that several panels share."""

from typing import Callable, List, Optional, Sequence, Tuple

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
    message_label.setWordWrap(True)
    message_label.setObjectName("message")
    layout.addWidget(message_label)
    return progress_bar, cancel_button, message_label


class JobPanel:
    """Plumbing of a panel that runs one background job at a time with a progress bar, Cancel and a message line.

    Subclasses set ``runner``, ``progress_bar``, ``cancel_button`` and ``message_label`` and implement
    ``_update_buttons``; ``_run`` does the rest on the GUI thread.
    """

    runner: BackgroundRunner
    job: Optional[Job] = None
    failure_prefix = "Failed"

    def _update_buttons(self) -> None:
        raise NotImplementedError

    def _run(self, name: str, fn: Callable[[Job], object], on_done: Callable[[object], None], text: str) -> None:
        self.message_label.setText(text)
        self.progress_bar.setValue(0)
        started = []  # the job, for its callbacks: a job replaced by a newer one must not touch the panel
        job = self.runner.submit(name, fn, on_done=lambda result: self._finish(on_done, result, started[0]),
                                 on_error=lambda error: self._failed(error, started[0]), on_progress=self._progress)
        started.append(job)
        self.job = job
        self._update_buttons()

    def _progress(self, fraction: float, text: str) -> None:
        self.progress_bar.setValue(int(round(100 * fraction)))
        if text:
            self.message_label.setText(text)

    def _finish(self, on_done: Callable[[object], None], result: object, job: Optional[Job] = None) -> None:
        if job is not None and job is not self.job:
            return
        self.job = None
        self.progress_bar.setValue(100)
        try:
            on_done(result)
        finally:
            self._update_buttons()

    def _failed(self, error: BaseException, job: Optional[Job] = None) -> None:
        if job is not None and job is not self.job:
            return
        self.job = None
        self.progress_bar.setValue(0)
        self.message_label.setText("Cancelled." if isinstance(error, Cancelled) else f"{self.failure_prefix}: {error}")
        self._update_buttons()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.message_label.setText(f"Cancelling {self.job.name} ...")


def fill_table(table: QTableWidget, rows: Sequence[List[str]]) -> None:
    """Replace a read-only table's rows with ``rows`` (text cells) and fit the columns."""
    table.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, text in enumerate(values):
            table.setItem(r, c, QTableWidgetItem(text))
    table.resizeColumnsToContents()

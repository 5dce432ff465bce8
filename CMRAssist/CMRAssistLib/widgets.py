"""Small widget groups that several panels share."""

from typing import Tuple

from .qt_compat import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout


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

"""Connection panel: server address, annotator name and expertise, and the server's state."""

from typing import Callable, List, Optional

from .annotation import AnnotationSession, ServerState
from .background import BackgroundRunner
from .client import EXPERTISE_LEVELS
from .qt_compat import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSettings,
    QVBoxLayout,
    QWidget,
)
from .settings import UserSettings, load_settings, save_settings


class ConnectionPanel:
    """Builds and drives the panel's widgets.

    Args:
        session: the annotation session (its settings are replaced on every connect).
        runner: runs the server calls in the worker process.
        settings_store: QSettings to load and save the user's settings (the application's by default).
    """

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner, *, settings_store=None):
        self.session = session
        self.runner = runner
        self.settings_store = settings_store if settings_store is not None else QSettings()
        self.state: Optional[ServerState] = None
        self.listeners: List[Callable[[ServerState], None]] = []
        self._build()
        self._connect()
        self._fill(load_settings(self.settings_store))

    def _build(self) -> None:
        self.widget = QWidget()
        self.widget.objectName = "CMRAssistConnectionPanel"
        layout = QVBoxLayout(self.widget)
        form = QFormLayout()
        self.url_edit = QLineEdit()
        self.url_edit.toolTip = "Address of the CMRAssist server, e.g. http://127.0.0.1:8000 (`make serve`)"
        self.annotator_edit = QLineEdit()
        self.annotator_edit.placeholderText = "your name, recorded with every label you submit"
        self.expertise_combo = QComboBox()
        for level in EXPERTISE_LEVELS:
            self.expertise_combo.addItem(level)
        form.addRow("Server:", self.url_edit)
        form.addRow("Annotator:", self.annotator_edit)
        form.addRow("Expertise:", self.expertise_combo)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.connect_button = QPushButton("Connect")
        self.connect_button.toolTip = "Save these settings and ask the server for its models and training state"
        row.addWidget(self.connect_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.status_label = QLabel("Not connected.")
        self.status_label.wordWrap = True
        self.status_label.objectName = "status"
        layout.addWidget(self.status_label)

    def _connect(self) -> None:
        self.connect_button.clicked.connect(lambda *_: self.connect())
        self.url_edit.returnPressed.connect(self.connect)

    def _fill(self, settings: UserSettings) -> None:
        self.url_edit.text = settings.server_url
        self.annotator_edit.text = settings.annotator
        self.expertise_combo.currentIndex = EXPERTISE_LEVELS.index(settings.expertise)

    def settings(self) -> UserSettings:
        return UserSettings(
            server_url=self.url_edit.text.strip(),
            annotator=self.annotator_edit.text.strip(),
            expertise=EXPERTISE_LEVELS[self.expertise_combo.currentIndex],
        )

    def connect(self) -> None:
        settings = self.settings()
        if not settings.server_url:
            self.status_label.text = "Type the server address first (e.g. http://127.0.0.1:8000)."
            return
        save_settings(settings, self.settings_store)
        self.session.set_settings(settings)
        self.connect_button.enabled = False
        self.status_label.text = f"Connecting to {self.session.client.server_url} ..."
        self.runner.submit("connect", self.session, "server_state", on_done=self._connected, on_error=self._failed)

    def refresh(self) -> None:
        """Ask the server for its state again (after training or a submission)."""
        if self.state is not None and not self.runner.busy("connect"):
            self.runner.submit("connect", self.session, "server_state", on_done=self._connected, on_error=self._failed)

    def _connected(self, state: ServerState) -> None:
        self.state = state
        self.connect_button.enabled = True
        warning = self.session.settings.problems()
        self.status_label.text = state.summary() + (f"\n{warning}" if warning else "")
        for listener in self.listeners:
            listener(state)

    def _failed(self, error: BaseException) -> None:
        self.connect_button.enabled = True
        unreachable = getattr(error, "status", None) == 0
        hint = (
            " Is the server running (`make serve` in the CMRAssist repository) and the address right?"
            if unreachable
            else ""
        )
        self.status_label.text = f"Not connected: {error}.{hint}"

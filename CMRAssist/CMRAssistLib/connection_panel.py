"""Connection panel: server address, API token (masked), annotator name and expertise, the account the server
signs this user in as, and the server's state."""

import dataclasses
import ipaddress
from typing import Callable, List, Optional
from urllib import parse

from .account import Account
from .annotation import AnnotationSession, ServerState
from .background import BackgroundRunner
from .client import EXPERTISE_LEVELS, server_address
from .qt_compat import (
    QCheckBox,
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
from .settings import UserSettings, load_settings, load_token, remembers_tokens, save_settings

FROM_ACCOUNT = "Set by your account on the server (it records labels under this name and expertise)"
SIGN_IN_HINT = " Paste the API token your server's admin gave you (`cmrassist users add` prints it) and press Connect."


def plain_http_warning(server_url: str, token: str) -> str:
    """A sentence when a token would cross the network unencrypted (``http://`` to another computer), else ''."""
    if not token or not server_url.startswith("http://"):
        return ""
    host = parse.urlsplit(server_url).hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    return "" if local else f"\nYour token travels unencrypted (http://) to {host}: ask for an https:// address."


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
        self._token_server = ""  # the server whose remembered token the token field was filled with
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
        self.token_edit = QLineEdit()
        self.token_edit.setEchoMode(QLineEdit.Password)
        self.token_edit.placeholderText = "given by the server's admin; none for a local server"
        self.token_edit.toolTip = (
            "A team server signs you in with the API token its admin gave you (`cmrassist users add` prints it, "
            "cmra_...) or your institution's token; a server on your own computer needs none"
        )
        self.remember_check = QCheckBox("Remember the token on this computer")
        self.remember_check.toolTip = "Kept in Slicer's settings for this server; untick to type it every session"
        self.annotator_edit = QLineEdit()
        self.annotator_edit.placeholderText = "your name, recorded with every label you submit"
        self.expertise_combo = QComboBox()
        for level in EXPERTISE_LEVELS:
            self.expertise_combo.addItem(level)
        form.addRow("Server:", self.url_edit)
        form.addRow("API token:", self.token_edit)
        form.addRow("", self.remember_check)
        form.addRow("Annotator:", self.annotator_edit)
        form.addRow("Expertise:", self.expertise_combo)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.connect_button = QPushButton("Connect")
        self.connect_button.toolTip = "Save these settings, sign in, and ask the server for its models and training"
        row.addWidget(self.connect_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.account_label = QLabel("")
        self.account_label.wordWrap = True
        self.account_label.objectName = "account"
        layout.addWidget(self.account_label)
        self.status_label = QLabel("Not connected.")
        self.status_label.wordWrap = True
        self.status_label.objectName = "status"
        layout.addWidget(self.status_label)

    def _connect(self) -> None:
        self.connect_button.clicked.connect(lambda *_: self.connect())
        self.url_edit.returnPressed.connect(self.connect)
        self.token_edit.returnPressed.connect(self.connect)
        self.url_edit.editingFinished.connect(self._server_typed)

    def _fill(self, settings: UserSettings) -> None:
        self.url_edit.text = settings.server_url
        self.token_edit.text = settings.token
        self._token_server = server_address(settings.server_url)
        self.remember_check.checked = remembers_tokens(self.settings_store)
        self.annotator_edit.text = settings.annotator
        self.expertise_combo.currentIndex = EXPERTISE_LEVELS.index(settings.expertise)

    def _server_typed(self) -> None:
        """Another server: its own remembered token replaces the previous server's (a token the user typed stays)."""
        server = server_address(self.url_edit.text) if self.url_edit.text.strip() else ""
        if server == self._token_server:
            return
        if self.token_edit.text == load_token(self.settings_store, self._token_server):
            self.token_edit.text = load_token(self.settings_store, server)
        self._token_server = server

    def settings(self) -> UserSettings:
        return UserSettings(
            server_url=self.url_edit.text.strip(),
            annotator=self.annotator_edit.text.strip(),
            expertise=EXPERTISE_LEVELS[self.expertise_combo.currentIndex],
            token=self.token_edit.text.strip(),
        )

    def connect(self) -> None:
        self._server_typed()
        settings = self.settings()
        if not settings.server_url:
            self.status_label.text = "Type the server address first (e.g. http://127.0.0.1:8000)."
            return
        save_settings(settings, self.settings_store, remember_token=bool(self.remember_check.checked))
        self._show_account(None)
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
        self._show_account(state.account)
        warning = self.session.settings.problems()
        self.status_label.text = state.summary() + (f"\n{warning}" if warning else "")
        for listener in self.listeners:
            listener(state)

    def _show_account(self, account: Optional[Account]) -> None:
        """Signed in: the name and expertise are the account's (read-only, and what the session sends); without
        sign-in they are the user's to type. ``None``: not known yet (connecting)."""
        signed_in = account is not None and account.signed_in
        self.annotator_edit.readOnly = signed_in
        self.expertise_combo.enabled = not signed_in
        self.annotator_edit.toolTip = FROM_ACCOUNT if signed_in else ""
        self.expertise_combo.toolTip = (
            FROM_ACCOUNT if signed_in else "Training weighs labels by their makers' expertise"
        )
        if account is None:
            self.account_label.text = ""
            return
        if signed_in:
            self.annotator_edit.text = account.name
            self.expertise_combo.currentIndex = EXPERTISE_LEVELS.index(account.expertise_level)
            self.session.set_settings(
                dataclasses.replace(self.session.settings, annotator=account.name, expertise=account.expertise_level)
            )
        settings = self.session.settings
        self.account_label.text = account.describe() + plain_http_warning(
            self.session.client.server_url, settings.token
        )

    def _failed(self, error: BaseException) -> None:
        self.connect_button.enabled = True
        status = getattr(error, "status", None)
        if status == 0:
            hint = " Is the server running (`make serve` in the CMRAssist repository) and the address right?"
        elif status == 401:
            hint = SIGN_IN_HINT
        else:
            hint = ""
        self.status_label.text = f"Not connected: {error}.{hint}"

"""Driving the panels as a user would: typing, clicking, waiting for the answer; screenshots of what they show."""

import os
import time

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from CMRAssistLib.annotate_panel import AnnotatePanel
from CMRAssistLib.annotation import AnnotationSession
from CMRAssistLib.connection_panel import ConnectionPanel
from CMRAssistLib.settings import UserSettings

SCREENSHOTS = os.environ.get(
    "CMRASSIST_SCREENSHOTS",
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "screenshots"),
)


def wait_for(app, predicate, timeout=120.0, what="condition"):
    """Let the Qt event loop run until ``predicate()`` holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        app.processEvents()
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def screenshot(widget, name: str) -> None:
    os.makedirs(SCREENSHOTS, exist_ok=True)
    widget.resize(460, max(widget.sizeHint.height(), 200))
    widget.show()
    QApplication.processEvents()
    assert widget.grab().save(os.path.join(SCREENSHOTS, name))


def click(button) -> None:
    assert button.enabled, f"{button.text} is disabled"
    QTest.mouseClick(button, Qt.LeftButton)


def connect(app, runner, store, url, tmp_path, *, name="Dr Ada", expertise="non-expert", token=""):
    """A Connection panel typed into (``token`` pasted in the API token field) and connected; the session and the
    panel."""
    session = AnnotationSession(UserSettings(), str(tmp_path / "work"))
    panel = ConnectionPanel(session, runner, settings_store=store)
    type_and_connect(app, panel, url, name=name, expertise=expertise, token=token)
    return session, panel


def type_and_connect(app, panel, url, *, name="Dr Ada", expertise="non-expert", token=""):
    """Type the server, token and annotator into a Connection panel, press Connect, wait for the answer."""
    panel.url_edit.clear()
    QTest.keyClicks(panel.url_edit, url)
    panel.token_edit.clear()
    QTest.keyClicks(panel.token_edit, token)
    panel.annotator_edit.clear()
    QTest.keyClicks(panel.annotator_edit, name)
    panel.expertise_combo.currentIndex = panel.expertise_combo.findText(expertise)
    click(panel.connect_button)
    wait_for(app, lambda: panel.connect_button.enabled, what="the connection answer")


def annotate_panel(app, runner, store, url, tmp_path, scene, answers):
    """A connected Annotate panel whose questions are answered from ``answers``; (session, panel, questions asked)."""
    session, connection = connect(app, runner, store, url, tmp_path)
    asked = []

    def ask(title, question):
        asked.append(question)
        return answers.pop(0)

    panel = AnnotatePanel(session, runner, scene, ask=ask, consent_store=store)
    connection.listeners.append(panel.server_changed)
    connection._connected(connection.state)  # deliver the state to the new listener
    return session, panel, asked

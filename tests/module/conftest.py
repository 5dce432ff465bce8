"""Fixtures of the module tests: PySide6 under PythonQt's property rules, a Qt application, panel helpers.

The rules are applied when this folder's tests are collected, before any panel is built: a panel (or a test)
that calls a property's getter (``combo.count()``) fails here as it would in Slicer.
"""

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pythonqt_rules  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from CMRAssistLib.background import BackgroundRunner  # noqa: E402

PYTHONQT_PROPERTIES = pythonqt_rules.apply()


@pytest.fixture(scope="session")
def app():
    app = QApplication.instance() or QApplication([])
    yield app
    # Destroy every widget while the application still exists: left to interpreter exit, PySide6 may crash.
    for widget in QApplication.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QApplication.sendPostedEvents(None, 0)
    app.processEvents()


@pytest.fixture()
def store(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture()
def runner(app):
    r = BackgroundRunner()
    yield r
    r.shutdown()
    assert r.callback_errors == [], r.callback_errors  # a panel callback that raised is a bug even if logged

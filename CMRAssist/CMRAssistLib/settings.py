"""Who is annotating and which server; kept between sessions in a QSettings store (Slicer's own settings file).

No Qt import here: the worker process (``worker.py``) reads the settings too, and it has no Qt.
"""

from dataclasses import dataclass
from typing import Optional

from .client import EXPERTISE_LEVELS

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
_GROUP = "CMRAssist"


@dataclass
class UserSettings:
    """Server address and the annotator's identity, as typed in the Connection panel.

    Args:
        server_url: address of the CMRAssist server.
        annotator: name recorded with every submitted label.
        expertise: ``expert`` or ``non-expert``; training weighs labels by it.
    """

    server_url: str = DEFAULT_SERVER_URL
    annotator: str = ""
    expertise: str = "non-expert"

    def problems(self) -> Optional[str]:
        """A sentence saying what must be fixed before labels can be submitted, or None."""
        if not self.server_url.strip():
            return "Type the server address (e.g. http://127.0.0.1:8000)."
        if not self.annotator.strip():
            return "Type your name: every submitted label records who made it."
        if self.expertise not in EXPERTISE_LEVELS:
            return f"Choose whether you are an expert or a non-expert annotator (got {self.expertise!r})."
        return None


def load_settings(store) -> UserSettings:
    """Read the saved settings (defaults where nothing was saved or a value is unusable).

    Args:
        store: a QSettings (or any object with ``value(key, default)``).
    """
    defaults = UserSettings()

    def read(key: str, default: str) -> str:
        value = store.value(f"{_GROUP}/{key}", default)
        return default if value is None else str(value)

    expertise = read("expertise", defaults.expertise)
    return UserSettings(
        server_url=read("serverUrl", defaults.server_url),
        annotator=read("annotator", ""),
        expertise=expertise if expertise in EXPERTISE_LEVELS else defaults.expertise,
    )


def save_settings(settings: UserSettings, store) -> None:
    """Write the settings to ``store`` (a QSettings)."""
    store.setValue(f"{_GROUP}/serverUrl", settings.server_url.strip())
    store.setValue(f"{_GROUP}/annotator", settings.annotator.strip())
    store.setValue(f"{_GROUP}/expertise", settings.expertise)
    store.sync()

"""Who is annotating, which server, and the API token; kept between sessions in a QSettings store (Slicer's own
settings file).

The token is kept as Slicer keeps the secrets it stores: Slicer has no keyring or encrypted store, and its DICOMweb
password lives in plain text in its settings (``DICOMUtils.GLOBAL_DICOMWEB_PASSWORD_KEY``); so does this token,
under the server it was given for (a remembered token is filled in for that server alone), in the user's own
settings file, which is made readable by its owner only. Unticking *Remember* keeps it for this session only. It
travels to the worker process on its standard input (``worker.request``), never on a command line or in a file.

No Qt import here: the worker process (``worker.py``) reads the settings too, and it has no Qt.
"""

import contextlib
import os
import stat
from dataclasses import dataclass, field
from typing import Optional
from urllib import parse

from .client import EXPERTISE_LEVELS, server_address

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
_GROUP = "CMRAssist"


@dataclass
class UserSettings:
    """Server address, API token and the annotator's identity, as typed in the Connection panel.

    Args:
        server_url: address of the CMRAssist server.
        annotator: name recorded with every submitted label (a server with sign-in records the account's name).
        expertise: ``expert`` or ``non-expert``; training weighs labels by it (likewise the account's when signed in).
        token: API token for a server with sign-in; empty for a server without it. Never shown in a ``repr``.
    """

    server_url: str = DEFAULT_SERVER_URL
    annotator: str = ""
    expertise: str = "non-expert"
    token: str = field(default="", repr=False)

    def problems(self) -> Optional[str]:
        """A sentence saying what must be fixed before labels can be submitted, or None."""
        if not self.server_url.strip():
            return "Type the server address (e.g. http://127.0.0.1:8000)."
        if not self.annotator.strip():
            return "Type your name: every submitted label records who made it."
        if self.expertise not in EXPERTISE_LEVELS:
            return f"Choose whether you are an expert or a non-expert annotator (got {self.expertise!r})."
        return None


def _token_key(server_url: str) -> str:
    return f"{_GROUP}/apiTokens/" + parse.quote(server_address(server_url), safe="")


def load_token(store, server_url: str) -> str:
    """The token remembered for ``server_url`` (empty when none is)."""
    value = store.value(_token_key(server_url), "") if server_url.strip() else ""
    return "" if value is None else str(value)


def remembers_tokens(store) -> bool:
    """Whether the user lets tokens be remembered on this computer (yes unless they said no)."""
    return str(store.value(f"{_GROUP}/rememberToken", "true")).lower() not in ("false", "0", "no")


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
    server_url = read("serverUrl", defaults.server_url)
    return UserSettings(
        server_url=server_url,
        annotator=read("annotator", ""),
        expertise=expertise if expertise in EXPERTISE_LEVELS else defaults.expertise,
        token=load_token(store, server_url),
    )


def save_settings(settings: UserSettings, store, *, remember_token: bool = True) -> None:
    """Write the settings to ``store`` (a QSettings); the token under its server, or forgotten when it is empty or
    ``remember_token`` is False."""
    store.setValue(f"{_GROUP}/serverUrl", settings.server_url.strip())
    store.setValue(f"{_GROUP}/annotator", settings.annotator.strip())
    store.setValue(f"{_GROUP}/expertise", settings.expertise)
    store.setValue(f"{_GROUP}/rememberToken", "true" if remember_token else "false")
    if settings.server_url.strip():
        key = _token_key(settings.server_url)
        if remember_token and settings.token.strip():
            store.setValue(key, settings.token.strip())
        else:
            store.remove(key)
    store.sync()
    if remember_token and settings.token.strip():
        owner_only(store)


def owner_only(store) -> None:
    """Make the settings file readable and writable by its owner only (POSIX; a registry store has no file)."""
    name = store.fileName() if hasattr(store, "fileName") else ""
    if os.name != "posix" or not name or not os.path.isfile(name):
        return
    with contextlib.suppress(OSError):  # someone else's file (a shared install): leave it as it is
        os.chmod(name, stat.S_IRUSR | stat.S_IWUSR)

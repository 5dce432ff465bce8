"""Identifiers clients send (image ids, label tags, version names): only letters, digits, ``_`` and ``-``, so
that none can name a path (``../x``, ``/etc``)."""

import re

from cmrassist_server.core.errors import CMRAssistError

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$")
SAFE_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


def check_id(value: str, what: str = "image id") -> str:
    """Refuse ids that could name a path (``../x``, ``/etc``) or are empty."""
    if not value or not SAFE_ID.match(value):
        raise CMRAssistError(f"invalid {what} {value!r}: use letters, digits, '_' and '-' only", 400)
    return value

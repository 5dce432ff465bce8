"""Identifiers clients send (image ids, label tags, version names): only letters, digits, ``_`` and ``-``, so
that none can name a path (``../x``, ``/etc``). Matched whole (``fullmatch``: ``$`` would let a trailing newline
through)."""

import re
from typing import Any

from cmrassist_server.core.errors import CMRAssistError

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")
SAFE_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")


def is_safe_id(value: Any, pattern: re.Pattern = SAFE_ID) -> bool:
    """Whether ``value`` is a string that the whole of ``pattern`` (an id by default) matches."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def check_id(value: str, what: str = "image id") -> str:
    """Refuse ids that could name a path (``../x``, ``/etc``), carry a newline or are empty (400)."""
    if not is_safe_id(value):
        raise CMRAssistError(f"invalid {what} {value!r}: use letters, digits, '_' and '-' only", 400)
    return value


def check_tag(value: str) -> str:
    """Refuse label tags that are not short safe words (400)."""
    if not is_safe_id(value, SAFE_TAG):
        raise CMRAssistError(f"invalid label tag {value!r}: use letters, digits, '_' and '-' only (64 at most)", 400)
    return value

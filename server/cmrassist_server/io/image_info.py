"""What a study's info may hold: the keys the server reads have types and ranges, the rest stays small JSON.

Checked on every write (upload, ``PUT /datastore/image/info``), so a bad value can never stop a later start
(the ranking sync and QC read ``frame``, ``ed_frame``, ``patient`` ... of every study).
"""

import json
from typing import Any, Dict

from cmrassist_server.core.errors import CMRAssistError

#: Keys the server reads, with their type and range.
TYPED: Dict[str, tuple] = {
    "frame": (int, 1, 10000),
    "ed_frame": (int, 1, 10000),
    "es_frame": (int, 1, 10000),
    "frames": (int, 1, 10000),
    "height": (float, 1.0, 300.0),
    "weight": (float, 0.5, 500.0),
    "patient": (str, 1, 128),
    "group": (str, 0, 64),
    "phase": (str, 0, 32),
    "source_image": (str, 1, 128),
}
#: Keys only the server sets.
SERVER_KEYS = frozenset({"ts", "name", "checksum"})
MAX_INFO_BYTES = 64 * 1024


def check_image_info(info: Any) -> Dict[str, Any]:
    """A copy of ``info`` with its typed keys converted, or CMRAssistError (422) naming what is wrong."""
    if not isinstance(info, dict):
        raise CMRAssistError("image info must be a JSON object", 422)
    out = {}
    for key, value in info.items():
        if key in SERVER_KEYS:
            continue
        out[key] = _typed(key, value) if key in TYPED and value is not None else value
    try:
        size = len(json.dumps(out, allow_nan=False))
    except (TypeError, ValueError):
        raise CMRAssistError("image info must hold JSON values only (no NaN)", 422) from None
    if size > MAX_INFO_BYTES:
        raise CMRAssistError(f"image info is {size} bytes; at most {MAX_INFO_BYTES}", 422)
    return out


def _typed(key: str, value: Any) -> Any:
    kind, low, high = TYPED[key]
    try:
        if kind is str:
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ValueError
            converted, size = str(value), len(str(value))
        else:
            if isinstance(value, bool):
                raise ValueError
            converted = kind(value) if kind is float else int(str(value))
            size = converted
    except (TypeError, ValueError):
        raise CMRAssistError(f"image info {key}={value!r}: {kind.__name__} expected", 422) from None
    if not low <= size <= high:
        raise CMRAssistError(f"image info {key}={value!r} is outside {low}-{high}", 422)
    return converted

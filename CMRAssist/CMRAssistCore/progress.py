"""The training progress protocol: one line per event on a training process's stdout, the same for every model.

MONAI Label keeps a train task's recent output lines and shows them in ``GET /train/``; the client picks out the
lines that start with :data:`PROGRESS_PREFIX` and reads them with :func:`parse_progress_line`. Events and their
keys are listed in ``docs/progress.md``.
"""

import json
from typing import Any, Dict, Optional

PROGRESS_PREFIX = "CMRASSIST_PROGRESS "

#: Events a training run reports, in the order they come.
EVENTS = ("loading", "start", "epoch", "done", "warning")

#: Readable names of the figures that decide whether a model is better (``metric`` of an epoch event).
METRICS: Dict[str, str] = {
    "mean": "mean validation Dice",
    "mae": "validation slice-Dice error",
    "macro_f1": "validation macro F1",
}


def progress_line(event: str, **fields: Any) -> str:
    """One progress line: the prefix and the event as JSON (no NaN: JSON has none)."""
    if event not in EVENTS:
        raise ValueError(f"unknown progress event {event!r}; one of {EVENTS}")
    return PROGRESS_PREFIX + json.dumps({"event": event, **fields}, allow_nan=False, default=str)


def parse_progress_line(line: str) -> Optional[Dict[str, Any]]:
    """The event of a progress line, or ``None`` for any other line (or a damaged one)."""
    if PROGRESS_PREFIX not in line:
        return None
    try:
        event = json.loads(line.split(PROGRESS_PREFIX, 1)[1])
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("event") in EVENTS else None


def metric_name(metric: Optional[str]) -> str:
    """The readable name of a metric key (the key itself when unknown)."""
    return METRICS.get(metric or "", metric or "validation figure")

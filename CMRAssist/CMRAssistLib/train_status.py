"""A server's training state as the client sees it: MONAI Label's train task record turned into one typed value."""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from CMRAssistCore.progress import PROGRESS_PREFIX, parse_progress_line


@dataclass
class TrainStatus:
    """Training state parsed from ``GET /train/``."""

    state: str = "NONE"
    running: bool = False
    epoch: int = 0
    max_epochs: int = 0
    percent: float = 0.0
    model: str = ""
    metric: str = ""  # the validation figure that decides which checkpoint is published (``docs/progress.md``)
    val: Dict[str, Any] = field(default_factory=dict)
    best_val: Dict[str, Any] = field(default_factory=dict)
    score: Optional[float] = None
    best_score: Optional[float] = None
    message: str = ""


def parse_train_status(task: Optional[Dict[str, Any]]) -> TrainStatus:
    """Turn MONAI Label's train task record (with its recent output lines) into a :class:`TrainStatus`."""
    if not task:
        return TrainStatus(state="NONE", message="no training has run yet")
    state = str(task.get("status", "NONE"))
    out = TrainStatus(state=state, running=state in ("SUBMITTED", "RUNNING"))
    for line in task.get("details") or []:
        event = parse_progress_line(line)
        if event is None:
            continue
        out.model = str(event.get("model") or out.model)
        out.metric = str(event.get("metric") or out.metric)
        if event["event"] == "epoch":
            out.epoch = int(event.get("epoch", 0))
            out.max_epochs = int(event.get("max_epochs", 0))
            out.percent = float(event.get("percent", 0.0))
            out.val = event.get("val") or {}
            out.score = event.get("score")
        if event["event"] in ("epoch", "done"):
            out.best_val = event.get("best_val") or out.best_val
            out.best_score = event.get("best_score", out.best_score)
        if event["event"] == "done":
            out.percent = 100.0
    if state == "ERROR":
        tail = [d for d in task.get("details") or [] if PROGRESS_PREFIX not in d]
        out.message = "training failed: " + (tail[-1] if tail else "see the server log")
    elif state == "STOPPED":
        out.message = "training stopped"
    return out

"""Train request params -> typed options: one parser and one set of common checks for every train task."""

from dataclasses import fields
from typing import Any, Dict, Optional

import torch


def check_device(device: Optional[str]) -> None:
    """Refuse a training device the server cannot use (``None``: CUDA when present, else CPU)."""
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available on the server")


def request_values(options_type: type, request: Dict[str, Any]) -> Dict[str, Any]:
    """The request params that are fields of the ``options_type`` dataclass, converted to the fields' types.

    Raises:
        ValueError: a value that does not convert, naming the option.
    """
    values: Dict[str, Any] = {}
    for f in fields(options_type):
        raw = request.get(f.name)
        if raw is None or (raw == "" and f.type is not str):
            continue
        if f.type is bool:
            word = str(raw).strip().lower()
            if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(f"invalid train option {f.name}={raw!r}: true or false expected")
            values[f.name] = word in ("1", "true", "yes", "on")
        elif f.type in (int, float, str):
            try:
                values[f.name] = f.type(raw)
            except (TypeError, ValueError):
                raise ValueError(f"invalid train option {f.name}={raw!r}: {f.type.__name__} expected") from None
        else:  # Optional[str]
            values[f.name] = str(raw)
    return values


def check_budget(options: Any) -> None:
    """The checks every train task shares: epochs, minutes, validation split, batch size, device."""
    if options.max_epochs < 1 or options.max_minutes <= 0 or not 0 < options.val_split < 1 or options.batch_size < 1:
        raise ValueError("max_epochs and batch_size must be >= 1, max_minutes > 0 and 0 < val_split < 1")
    check_device(options.device)

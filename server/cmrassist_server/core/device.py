"""The compute device: CUDA when present, else the CPU; one rule for training and inference."""

from typing import Optional

import torch

from cmrassist_server.core.errors import CMRAssistError

DEVICES = ("cpu", "cuda")


def default_device(requested: Optional[str] = None) -> str:
    """The device to use: the one requested (checked), else CUDA when present, else the CPU.

    Raises:
        CMRAssistError (422): an unknown device, or CUDA asked for on a machine without a CUDA GPU.
    """
    if requested in (None, ""):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested not in DEVICES:
        raise CMRAssistError(f"device must be 'cpu' or 'cuda', not {requested!r}", 422)
    if requested == "cuda" and not torch.cuda.is_available():
        raise CMRAssistError("device 'cuda' was asked for but no CUDA GPU is available on the server", 422)
    return requested

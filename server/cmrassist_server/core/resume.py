"""A training run's state, saved after every epoch so a stopped run continues as if it had never stopped.

The state holds what decides the rest of the run: the network and optimiser, the epoch reached, the best
validation figures and history, the loop's elapsed time, and every random state (torch's, and the recipe's own
samplers and augmentation generators). It is written atomically beside nothing served: a release keeps it
outside the repository (``train-release --state``), because a run of many hours may span sessions.
"""

import os
from typing import Any, Dict, Optional

import torch

from cmrassist_server.core.checkpoints import atomic_write
from cmrassist_server.core.errors import CMRAssistError

STATE_FORMAT = 1


def save_state(path: str, state: Dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists and dicts only) atomically to ``path``."""
    atomic_write(path, lambda tmp: torch.save({"format": STATE_FORMAT, **state}, tmp))


def load_state(path: str) -> Optional[Dict[str, Any]]:
    """The saved state of ``path`` (``None`` when there is none yet).

    Raises:
        CMRAssistError (409): the file is not a training state this version can continue.
    """
    if not os.path.isfile(path):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: say which, do not guess
        raise CMRAssistError(
            f"{path} is not a training state that can be resumed ({e}); remove it to start over", 409
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CMRAssistError(f"{path} is a training state of another format; remove it to start over", 409)
    return state


def numpy_rng_state(rng) -> Dict[str, Any]:
    """A ``numpy.random.Generator``'s state as plain values (its 128-bit integers kept as decimal strings)."""
    state = rng.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {k: str(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def set_numpy_rng_state(rng, saved: Dict[str, Any]) -> None:
    rng.bit_generator.state = {**saved, "state": {k: int(v) for k, v in saved["state"].items()}}

"""Which segmentation batch work uses (``cmrassist analyse``, the study report, QC scoring): the fold ensemble
while the served model is the one it shipped with, else the served model alone; always with flips.

A model folder (``models/`` of the repository, or a server's) may hold the fold ensemble beside its served
``segmentation.pt``: the manifest ``ensemble.json`` and the members ``ensemble/fold<k>.pt``. The manifest names
each member with its SHA-256 and the SHA-256 of the served model it shipped with. A site that retrains replaces
the served model; the older ensemble would then undo its work, so from that moment batch work uses the site's
model (with flips) and the ensemble waits unused (it serves again if the shipped version is made current).
One-click segmentation never uses this: it stays on the served model alone, for speed.
"""

import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from cmrassist_server.core.checkpoints import ServedModel, file_sha256
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.segmentation.ensemble import EnsemblePredictor

logger = logging.getLogger(__name__)

#: The manifest's file name, beside the served ``segmentation.pt``.
MANIFEST = "ensemble.json"
#: The members' folder, beside the manifest.
MEMBERS_FOLDER = "ensemble"
MANIFEST_FORMAT = 1
_MEMBER_FILE = re.compile(rf"{MEMBERS_FOLDER}/fold[0-9]+\.pt")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def member_file(fold: int) -> str:
    """A member's path relative to the model folder (also its name in ``SHA256SUMS``)."""
    return f"{MEMBERS_FOLDER}/fold{fold}.pt"


def read_manifest(folder: str) -> Optional[Dict[str, Any]]:
    """The ensemble manifest of a model folder, ``None`` when the folder has none.

    Args:
        folder: a model folder.

    Raises:
        CMRAssistError (409): a manifest that cannot be read, or that names a member outside ``ensemble/``.
    """
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            manifest = json.load(f)
        members = manifest["members"]
        ok = manifest["format"] == MANIFEST_FORMAT and _SHA256.fullmatch(manifest["served_sha256"]) and members
        ok = ok and all(_MEMBER_FILE.fullmatch(m["file"]) and _SHA256.fullmatch(m["sha256"]) for m in members)
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise CMRAssistError(f"{path} is not a fold-ensemble manifest (format {MANIFEST_FORMAT}): restore it", 409)
    return manifest


def member_paths(folder: str, manifest: Dict[str, Any]) -> List[str]:
    """The members' paths in ``folder`` after each matched the SHA-256 its manifest gives.

    Args:
        folder: the folder the manifest was read from.
        manifest: its manifest (:func:`read_manifest`).

    Raises:
        CMRAssistError (409): a member that is missing, changed or damaged.
    """
    paths = []
    for member in manifest["members"]:
        path = os.path.join(folder, member["file"])
        if not os.path.isfile(path):
            raise CMRAssistError(f"ensemble member {path} is missing", 409)
        if file_sha256(path) != member["sha256"]:
            raise CMRAssistError(
                f"ensemble member {path} does not match its SHA-256 in {MANIFEST} (changed or damaged)", 409
            )
        paths.append(path)
    return paths


@dataclass(frozen=True)
class BatchSegmentation:
    """The checkpoints batch work segments with (averaged, with flips) and why these.

    Args:
        checkpoints: the ensemble's members, or the served model alone.
        description: one line naming the choice and its reason (logged and kept in run records).
        ensemble: whether the checkpoints are the fold ensemble.
    """

    checkpoints: Tuple[str, ...]
    description: str
    ensemble: bool = False


def batch_segmentation(model_dir: str) -> BatchSegmentation:
    """What batch work segments with, given a model folder (see the module docstring).

    Args:
        model_dir: the folder of the served ``segmentation.pt`` (and maybe the ensemble).

    Raises:
        CMRAssistError (409): the folder serves no segmentation model.
    """
    served = os.path.join(model_dir, "segmentation.pt")
    if not os.path.isfile(served):
        raise CMRAssistError(f"no segmentation model in {model_dir}: train or install one first", 409)
    alone = "the served segmentation model with flips"
    try:
        manifest = read_manifest(model_dir)
        if manifest is None:
            return BatchSegmentation((served,), f"{alone} (no fold ensemble installed)")
        if file_sha256(served) != manifest["served_sha256"]:
            return BatchSegmentation(
                (served,),
                f"{alone}: it is not the model the fold ensemble shipped with "
                "(retrained here), so the older ensemble stays unused",
            )
        members = member_paths(model_dir, manifest)
    except CMRAssistError as e:  # a damaged ensemble must not stop batch work: the served model still segments
        logger.error(f"fold ensemble of {model_dir} not used: {e}")
        return BatchSegmentation((served,), f"{alone}: the fold ensemble is unusable ({e})")
    return BatchSegmentation(tuple(members), f"the {len(members)}-model fold ensemble with flips", ensemble=True)


def batch_predictor(
    choice: BatchSegmentation, *, device: Optional[str] = None, batch_slices: int = 16
) -> EnsemblePredictor:
    """The predictor of a batch choice: its checkpoints' mean probabilities over flips.

    Args:
        choice: from :func:`batch_segmentation`.
        device: ``cuda`` or ``cpu``; ``None`` picks CUDA when present.
        batch_slices: slices per forward pass.
    """
    predictor = EnsemblePredictor(list(choice.checkpoints), device=device, flips=True, batch_slices=batch_slices)
    predictor.record = {**predictor.record, "batch": choice.description}
    return predictor


def served_batch(checkpoint: str, device: Optional[str] = None) -> ServedModel[EnsemblePredictor]:
    """The batch predictor of the model folder of served ``checkpoint``, chosen again whenever the served model
    changes (a retrained model turns the ensemble off at once, a restored shipped one on again).

    Args:
        checkpoint: the served ``segmentation.pt``.
        device: ``cuda`` or ``cpu``; ``None`` picks CUDA when present.
    """

    def load(path: str) -> EnsemblePredictor:
        choice = batch_segmentation(os.path.dirname(os.path.abspath(path)))
        logger.info(f"batch segmentation: {choice.description}")
        return batch_predictor(choice, device=device)

    return ServedModel(checkpoint, load)

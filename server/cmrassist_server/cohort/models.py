"""The models a cohort run uses: the served ones of a model folder (or named files), checked before any worker
starts, identified by their SHA-256 in every result and in the run record. The run segments with what the model
folder chooses for batch work (``segmentation/batch.py``: the fold ensemble while the served model is the one it
shipped with, else the served model), always averaged over flips."""

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from cmrassist_server.core.checkpoints import load, read_record
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.segmentation.batch import batch_segmentation

#: Where served models are looked for when no folder is given: the shipped models, then the server's own.
DEFAULT_MODEL_DIRS = ("models", os.path.join("server", "model"))


@dataclass(frozen=True)
class ModelFiles:
    """The segmentation checkpoint, the QC checkpoint (``None``: QC runs its rule checks only) and the fold
    ensemble's members when batch work uses them (empty: the segmentation model segments alone, with flips).

    Args:
        segmentation: the served (or named) segmentation checkpoint.
        qc: the QC checkpoint.
        ensemble: the fold ensemble's members the run segments with.
        batch: which segmentation the run uses and why (``segmentation/batch.py``).
    """

    segmentation: str
    qc: Optional[str] = None
    ensemble: Tuple[str, ...] = ()
    batch: str = "the named segmentation model with flips"

    @classmethod
    def resolve(
        cls, model_dir: Optional[str] = None, *, segmentation: Optional[str] = None, qc: Optional[str] = None
    ) -> "ModelFiles":
        """``segmentation.pt`` and ``qc.pt`` of ``model_dir`` (the first default folder holding a segmentation
        model when none is given) with the folder's batch choice, or the files named (a named segmentation model
        is used alone: the ensemble belongs to the served model it shipped with).

        Args:
            model_dir: the served models' folder.
            segmentation: a segmentation checkpoint to use instead of the folder's.
            qc: a QC checkpoint to use instead of the folder's.

        Raises:
            CMRAssistError (409): no segmentation model, or a file that is not a checkpoint of its kind.
        """
        folders = [model_dir] if model_dir else [d for d in DEFAULT_MODEL_DIRS if os.path.isdir(d)]
        folder = next((d for d in folders if os.path.isfile(os.path.join(d, "segmentation.pt"))), None)
        seg = segmentation or (os.path.join(folder, "segmentation.pt") if folder else None)
        if not seg or not os.path.isfile(seg):
            where = segmentation or model_dir or " or ".join(DEFAULT_MODEL_DIRS)
            raise CMRAssistError(f"no segmentation model in {where}: train or install one first", 409)
        if qc is None and folder and os.path.isfile(os.path.join(folder, "qc.pt")):
            qc = os.path.join(folder, "qc.pt")
        if qc is not None and not os.path.isfile(qc):
            raise CMRAssistError(f"QC model {qc} does not exist", 409)
        choice = batch_segmentation(folder) if not segmentation and folder else None
        ensemble = tuple(os.path.abspath(p) for p in choice.checkpoints) if choice and choice.ensemble else ()
        batch = choice.description if choice else cls.batch
        files = cls(os.path.abspath(seg), os.path.abspath(qc) if qc else None, ensemble, batch)
        for path in (files.segmentation, *files.ensemble):
            load(path, kind="segmentation")  # a damaged or foreign file stops the run before it starts
        if files.qc:
            load(files.qc, kind="qc")
        return files

    def snapshot(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """The checkpoint files' bytes (every worker loads exactly these, wherever it runs, even if the served
        model is replaced during the run) and, from the same bytes, each model's path, SHA-256 and record: the
        ensemble's members under ``ensemble`` (``None`` without), the choice under ``batch``."""
        payloads: Dict[str, Any] = {}
        described: Dict[str, Any] = {}
        for kind, path in (("segmentation", self.segmentation), ("qc", self.qc)):
            payloads[kind], described[kind] = _read(path) if path else (None, None)
        members = [_read(path) for path in self.ensemble]
        payloads["ensemble"] = [payload for payload, _ in members]
        described["ensemble"] = [member for _, member in members] or None
        described["batch"] = {"segmentation": self.batch, "flips": True}
        return payloads, described


def _read(path: str) -> Tuple[bytes, Dict[str, Any]]:
    with open(path, "rb") as f:
        payload = f.read()
    record = read_record(path) or load(path).record
    return payload, {"path": path, "sha256": hashlib.sha256(payload).hexdigest(), "record": record}


def model_ids(described: Dict[str, Any]) -> Dict[str, Any]:
    """What a subject's result depends on of the models (from :meth:`ModelFiles.snapshot`): each file's SHA-256,
    the ensemble's members in order, and the flips.

    Args:
        described: the models as ``snapshot`` describes them.
    """
    ids: Dict[str, Any] = {kind: (described.get(kind) or {}).get("sha256") for kind in ("segmentation", "qc")}
    members: List[Dict[str, Any]] = described.get("ensemble") or []
    ids["ensemble"] = [m["sha256"] for m in members] or None
    ids["flips"] = True
    return ids

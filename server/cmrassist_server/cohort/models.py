"""The models a cohort run uses: the served ones of a model folder (or named files), checked before any worker
starts, identified by their SHA-256 in every result and in the run record."""

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from cmrassist_server.core.checkpoints import load, read_record
from cmrassist_server.core.errors import CMRAssistError

#: Where served models are looked for when no folder is given: the shipped models, then the server's own.
DEFAULT_MODEL_DIRS = ("models", os.path.join("server", "model"))


@dataclass(frozen=True)
class ModelFiles:
    """The segmentation checkpoint and the QC checkpoint (``None``: QC runs its rule checks only)."""

    segmentation: str
    qc: Optional[str] = None

    @classmethod
    def resolve(
        cls, model_dir: Optional[str] = None, *, segmentation: Optional[str] = None, qc: Optional[str] = None
    ) -> "ModelFiles":
        """``segmentation.pt`` and ``qc.pt`` of ``model_dir`` (the first default folder holding a segmentation
        model when none is given), or the files named.

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
        files = cls(os.path.abspath(seg), os.path.abspath(qc) if qc else None)
        load(files.segmentation, kind="segmentation")  # a damaged or foreign file stops the run before it starts
        if files.qc:
            load(files.qc, kind="qc")
        return files

    def snapshot(self) -> Tuple[Dict[str, Optional[bytes]], Dict[str, Any]]:
        """The checkpoint files' bytes (every worker loads exactly these, wherever it runs, even if the served
        model is replaced during the run) and, from the same bytes, each model's path, SHA-256 and record."""
        payloads: Dict[str, Optional[bytes]] = {}
        described: Dict[str, Any] = {}
        for kind, path in (("segmentation", self.segmentation), ("qc", self.qc)):
            if not path:
                payloads[kind] = described[kind] = None
                continue
            with open(path, "rb") as f:
                payloads[kind] = f.read()
            record = read_record(path) or load(path).record
            described[kind] = {"path": path, "sha256": hashlib.sha256(payloads[kind]).hexdigest(), "record": record}
        return payloads, described

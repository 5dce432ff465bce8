"""Label versions beside the datastore: one per annotator per image, with who made it, their expertise and when.

MONAI Label keeps one label per tag. Here every ``final`` submission is also kept as its annotator's version in
``<studies>/.cmrassist/versions/<image>/<version>.nii.gz`` with an index ``versions.json`` (written atomically);
another annotator's submission never touches it. A reviewer accepts one version or builds a consensus
(SimpleITK multi-label STAPLE), which becomes the ``final`` label; after that, new submissions are kept as
versions and leave the reviewed ``final`` alone until a reviewer decides again.
"""

import json
import os
import re
import shutil
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.checkpoints import atomic_write, atomic_write_json
from cmrassist_server.core.errors import CMRAssistError

CONSENSUS = "consensus"
_SLUG = re.compile(r"[^a-z0-9]+")


def version_id(annotator: str) -> str:
    """The readable base of an annotator's version id: their name as lowercase ASCII letters, digits and dashes
    (``annotator`` for a name with none of them, e.g. 王医生); :meth:`LabelVersions.id_for` makes it unique."""
    if not (annotator or "").strip():
        raise CMRAssistError("a label version needs the annotator's name", 422)
    slug = _SLUG.sub("-", annotator.strip().lower()).strip("-")
    return slug[:60] or "annotator"


class LabelVersions:
    """The version store of a local datastore.

    Args:
        folder: where versions live (``<studies>/.cmrassist/versions``).
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._lock = threading.RLock()
        os.makedirs(folder, exist_ok=True)

    # -- index ----------------------------------------------------------------------------------------------
    def _index_path(self, image_id: str) -> str:
        return os.path.join(self.folder, image_id, "versions.json")

    def _read(self, image_id: str) -> Dict[str, Any]:
        try:
            with open(self._index_path(image_id)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {"versions": {}, "accepted": None}

    def _write(self, image_id: str, index: Dict[str, Any]) -> None:
        atomic_write_json(self._index_path(image_id), index)

    def id_for(self, image_id: str, annotator: str) -> str:
        """The version id of ``annotator`` on ``image_id``: their own one if they have submitted before, else a new
        one that no other annotator holds ("dr-a", then "dr-a-2" for "dr. a"; never ``consensus``)."""
        versions = self._read(image_id)["versions"]
        for vid, entry in versions.items():
            if vid != CONSENSUS and entry.get("annotator") == annotator:
                return vid
        base = version_id(annotator)
        vid, n = base, 1
        while vid in versions or vid == CONSENSUS:
            n += 1
            vid = f"{base}-{n}"
        return vid

    def path(self, image_id: str, vid: str) -> str:
        return os.path.join(self.folder, image_id, vid + ".nii.gz")

    # -- what clients see -----------------------------------------------------------------------------------
    def list(self, image_id: str) -> Dict[str, Any]:
        """``{"versions": [{"id", "annotator", "expertise", "created", "source", ...}], "accepted": id or None}``."""
        index = self._read(image_id)
        versions = sorted(index["versions"].values(), key=lambda v: v["created"])
        return {"image": image_id, "versions": versions, "accepted": index.get("accepted")}

    def get(self, image_id: str, vid: str) -> Dict[str, Any]:
        entry = self._read(image_id)["versions"].get(vid)
        if entry is None:
            raise CMRAssistError(f"image {image_id!r} has no label version {vid!r}", 404)
        return entry

    def accepted(self, image_id: str) -> Optional[str]:
        return self._read(image_id).get("accepted")

    # -- changes --------------------------------------------------------------------------------------------
    def add(
        self,
        image_id: str,
        label_file: str,
        info: Dict[str, Any],
        *,
        source: str = "submitted",
        vid: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Keep ``label_file`` as the version of ``info["annotator"]`` (replacing only that annotator's own)."""
        with self._lock:
            vid = vid or self.id_for(image_id, str(info.get("annotator") or "").strip())
            index = self._read(image_id)
            os.makedirs(os.path.join(self.folder, image_id), exist_ok=True)
            if label_file.endswith(".nii.gz"):
                atomic_write(self.path(image_id, vid), lambda tmp: shutil.copyfile(label_file, tmp))
            else:
                atomic_write(
                    self.path(image_id, vid),
                    lambda tmp: sitk.WriteImage(
                        sitk.ReadImage(label_file), tmp, useCompression=True, imageIO="NiftiImageIO"
                    ),
                )
            entry = {
                "id": vid,
                "annotator": info.get("annotator") or vid,
                "expertise": info.get("expertise") or "unknown",
                "created": time.time(),
                "submitted_at": info.get("submitted_at"),
                "source": source,
                **{k: v for k, v in info.items() if k not in ("annotator", "expertise", "submitted_at")},
            }
            index["versions"][vid] = entry
            self._write(image_id, index)
            return entry

    def set_accepted(self, image_id: str, vid: str, reviewer: str) -> Dict[str, Any]:
        """Mark ``vid`` as the reviewed one (the caller writes it as ``final``)."""
        with self._lock:
            index = self._read(image_id)
            if vid not in index["versions"]:
                raise CMRAssistError(f"image {image_id!r} has no label version {vid!r}", 404)
            index["accepted"] = vid
            index["accepted_by"] = reviewer
            index["accepted_at"] = time.time()
            self._write(image_id, index)
            return index["versions"][vid]

    def consensus(self, image_id: str, vids: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, List[str]]:
        """Multi-label STAPLE of the chosen versions (all but an earlier consensus by default): the label array and
        the versions merged."""
        index = self._read(image_id)
        chosen = list(dict.fromkeys(vids)) if vids is not None else [v for v in index["versions"] if v != CONSENSUS]
        missing = [v for v in chosen if v not in index["versions"]]
        if missing:
            raise CMRAssistError(f"image {image_id!r} has no label version(s) {missing}", 404)
        if len(chosen) < 2:
            raise CMRAssistError(
                f"a consensus needs at least 2 different versions; {len(chosen)} given for image {image_id!r}", 409
            )
        return staple([sitk.GetArrayFromImage(sitk.ReadImage(self.path(image_id, v))) for v in chosen]), chosen


def staple(labels: List[np.ndarray]) -> np.ndarray:
    """Multi-label STAPLE consensus of label arrays on one grid; undecided voxels take the majority vote."""
    images = [sitk.GetImageFromArray(np.asarray(a, np.uint8)) for a in labels]
    undecided = 255
    staple_filter = sitk.MultiLabelSTAPLEImageFilter()
    staple_filter.SetLabelForUndecidedPixels(undecided)
    out = sitk.GetArrayFromImage(staple_filter.Execute(images))
    if (out == undecided).any():
        vote = sitk.GetArrayFromImage(sitk.LabelVoting(images, undecided))
        vote[vote == undecided] = 0
        out = np.where(out == undecided, vote, out)
    return out.astype(np.uint8)

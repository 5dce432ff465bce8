"""Scoring method ``qc``: QC of every stored 3D frame, kept per image for the review strategy."""

import json
import logging
import os
import time
from typing import Dict, List, Optional

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod

from cmrassist_server.core.checkpoints import ServedModel, atomic_write_json
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.foreground import Foreground
from cmrassist_server.imaging.imageio import check_label, read_image
from cmrassist_server.qc.check import QualityChecker, parse_thresholds
from cmrassist_server.qc.store import QCStore
from cmrassist_server.segmentation.ensemble import EnsemblePredictor

from ..infers.qc import PREDICTION, stamp

logger = logging.getLogger(__name__)


def label_to_check(datastore: Datastore, image_id: str) -> str:
    """The label QC looks at: a submitted ``final`` label, else a stored ``original`` prediction, else a new one."""
    labels = datastore.get_labels_by_image_id(image_id) or {}
    for tag in ("final", "original"):
        if tag in labels:
            return tag
    return PREDICTION


class QCScoring(ScoringMethod):
    """Runs QC over the datastore; images whose stored report is current (same stamp) are skipped.

    Args:
        checker: the QC checker.
        segmentation: batch work's segmentation (``segmentation/batch.served_batch``: the fold ensemble while it
            serves, else the served model, with flips); images without labels are checked through its prediction.
        store: the per-image QC results.
        threshold: flag threshold.
        foreground: the server's interactive requests: the pass waits between images while one runs.
    """

    def __init__(
        self,
        checker: QualityChecker,
        segmentation: ServedModel[EnsemblePredictor],
        store: QCStore,
        *,
        threshold: float,
        foreground: Optional[Foreground] = None,
    ):
        super().__init__("QC of every 3D frame's label or prediction; the 'qc' strategy serves the worst first")
        self.checker = checker
        self.segmentation = segmentation
        self.store = store
        self.threshold = threshold
        self.foreground = foreground

    def __call__(self, request, datastore: Datastore) -> Dict:
        thresholds = parse_thresholds(request.get("threshold", self.threshold))
        checked: List[str] = []
        skipped: List[str] = []
        failed: Dict[str, str] = {}
        for image_id in datastore.list_images():
            if self.foreground is not None:
                self.foreground.wait()
            tag = label_to_check(datastore, image_id)
            if tag == PREDICTION and not self.segmentation.exists():
                skipped.append(image_id)
                continue
            image_path = datastore.get_image_uri(image_id)
            label_path = self.segmentation.checkpoint if tag == PREDICTION else datastore.get_label_uri(image_id, tag)
            current = stamp(image_path, label_path, self.checker.checkpoint)
            previous = self.store.get(image_id)
            if previous and previous.get("stamp") == current and previous.get("label") == tag:
                skipped.append(image_id)
                continue
            try:
                image = read_image(image_path)
                if image.GetDimension() != 3:
                    skipped.append(image_id)  # cines are checked through their ED/ES frame studies
                    continue
                label = (
                    self.segmentation.get().segment(image)
                    if tag == PREDICTION
                    else check_label(read_image(label_path), image)
                )
                if label.ndim != 3:
                    skipped.append(image_id)
                    continue
                report = self.checker.check(image, label, thresholds=thresholds)
            except (CMRAssistError, ValueError, RuntimeError) as e:
                failed[image_id] = str(e)
                logger.warning(f"QC of {image_id} failed: {e}")
                continue
            info = datastore.get_image_info(image_id) or {}
            report.update(
                image=image_id, label=tag, image_info=info, stamp=current, seconds={"qc": report.pop("seconds")}
            )
            self.store.save(image_id, report)
            checked.append(image_id)
        logger.info(f"QC scoring: {len(checked)} checked, {len(skipped)} skipped, {len(failed)} failed")
        result = {"checked": checked, "skipped": len(skipped), "failed": failed, "finished": time.time()}
        atomic_write_json(self.summary_path, result)  # runs in a child process: the server reads it from here
        return result

    @property
    def summary_path(self) -> str:
        return os.path.join(os.path.dirname(self.store.folder), "qc-scoring.json")

    def last_result(self) -> Optional[Dict]:
        """What the last finished scoring run did (``GET /scoring/`` shows it)."""
        try:
            with open(self.summary_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

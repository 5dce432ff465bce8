"""Infer task ``segmentation``: LV cavity, LV myocardium and RV cavity of a 3D frame or a 4D cine."""

import logging
import os
import tempfile
import time
from typing import Dict, Optional

from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from CMRAssistCore.labels import CARDIAC_CLASSES
from cmrassist_server.imageio import InvalidInputError, check_study_image, read_image, write_label_like
from cmrassist_server.network import read_record
from cmrassist_server.position import PositionClassifier, clear_outside_lv
from cmrassist_server.predictor import PredictorCache

logger = logging.getLogger(__name__)


class SegmentationInferTask(InferTask):
    """One-click segmentation; answers 409 with a clear message before any model has been trained.

    Request param ``outside_lv``: ``keep`` (default) or ``empty``, which leaves the slices that the slice-position
    classifier calls too basal or too apical unsegmented.

    Args:
        predictors: the served checkpoint (reloaded whenever training publishes a better one) and its device.
        positions: the slice-position classifier (for ``outside_lv=empty``).
    """

    def __init__(self, predictors: PredictorCache, *, positions: Optional[PositionClassifier] = None):
        super().__init__(type=InferType.SEGMENTATION, labels=dict(CARDIAC_CLASSES), dimension=3,
                         description="2D slice-wise U-Net: LV cavity (3), LV myocardium (2), RV cavity (1)",
                         config={"device": predictors.device or "auto", "outside_lv": "keep"})
        self.positions = positions
        self.checkpoint = predictors.checkpoint
        self.device = predictors.device
        self.cache = predictors

    def info(self) -> Dict:
        record = read_record(self.checkpoint) if self.cache.exists() else None
        return {**super().info(), "trained": self.cache.exists(), "model_record": record}

    def is_valid(self) -> bool:
        return True  # listed even before training, so clients can see it and its "trained" flag

    def __call__(self, request):
        outside_lv = request.get("outside_lv") or "keep"
        if outside_lv not in ("keep", "empty"):
            raise HTTPException(status_code=422, detail=f"outside_lv must be 'keep' or 'empty', not {outside_lv!r}")
        if not self.cache.exists():
            raise HTTPException(status_code=409, detail="No segmentation model has been trained yet: start training "
                                "with POST /train/segmentation (needs images with final labels), then try again.")
        image_path = request["image"]
        if outside_lv == "empty" and (self.positions is None or self.positions.model() is None):
            raise HTTPException(status_code=409, detail="outside_lv=empty needs a slice-position model: rank slices, "
                                "set the cut points and POST /train/slice_position first")
        try:
            image = read_image(image_path)
            check_study_image(image)
        except InvalidInputError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None
        device = request.get("device") if request.get("device") in ("cpu", "cuda") else self.device
        start = time.time()
        labels = self.cache.get(device).segment(image)
        cleared = clear_outside_lv(labels, image, self.positions) if outside_lv == "empty" else None
        out = tempfile.NamedTemporaryFile(suffix=".nii.gz", delete=False).name
        write_label_like(labels, image, out)
        frames = 1 if image.GetDimension() == 3 else image.GetSize()[3]
        params = {"label_names": dict(CARDIAC_CLASSES), "frames": frames, "latencies": {"total": round(time.time() - start, 3)},
                  "model": os.path.basename(self.checkpoint)}
        if cleared is not None:
            params["cleared_slices"] = cleared
        return out, params

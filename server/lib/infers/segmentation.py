"""Infer task ``segmentation``: LV cavity, LV myocardium and RV cavity of a 3D frame or a 4D cine."""

import logging
import os
import tempfile
import time
from typing import Dict

from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from CMRAssistLib.labels import CARDIAC_CLASSES
from cmrassist_server.imageio import InvalidInputError, check_study_image, read_image, write_label_like
from cmrassist_server.network import read_record
from cmrassist_server.predictor import PredictorCache

logger = logging.getLogger(__name__)


class SegmentationInferTask(InferTask):
    """One-click segmentation; answers 409 with a clear message before any model has been trained.

    Args:
        predictors: the served checkpoint (reloaded whenever training publishes a better one) and its device.
    """

    def __init__(self, predictors: PredictorCache):
        super().__init__(type=InferType.SEGMENTATION, labels=dict(CARDIAC_CLASSES), dimension=3,
                         description="2D slice-wise U-Net: LV cavity (3), LV myocardium (2), RV cavity (1)",
                         config={"device": predictors.device or "auto"})
        self.checkpoint = predictors.checkpoint
        self.device = predictors.device
        self.cache = predictors

    def info(self) -> Dict:
        record = read_record(self.checkpoint) if self.cache.exists() else None
        return {**super().info(), "trained": self.cache.exists(), "model_record": record}

    def is_valid(self) -> bool:
        return True  # listed even before training, so clients can see it and its "trained" flag

    def __call__(self, request):
        if not self.cache.exists():
            raise HTTPException(status_code=409, detail="No segmentation model has been trained yet: start training "
                                "with POST /train/segmentation (needs images with final labels), then try again.")
        image_path = request["image"]
        try:
            image = read_image(image_path)
            check_study_image(image)
        except InvalidInputError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None
        device = request.get("device") if request.get("device") in ("cpu", "cuda") else self.device
        start = time.time()
        labels = self.cache.get(device).segment(image)
        out = tempfile.NamedTemporaryFile(suffix=".nii.gz", delete=False).name
        write_label_like(labels, image, out)
        frames = 1 if image.GetDimension() == 3 else image.GetSize()[3]
        params = {"label_names": dict(CARDIAC_CLASSES), "frames": frames, "latencies": {"total": round(time.time() - start, 3)},
                  "model": os.path.basename(self.checkpoint)}
        return out, params

"""Infer task ``qc``: quality of a segmentation without ground truth, per slice and class (JSON only)."""

import logging
import os
import time
from typing import Dict, Optional

from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from CMRAssistCore.labels import CARDIAC_CLASSES
from cmrassist_server.imageio import InvalidInputError, check_label, check_study_image, read_image
from cmrassist_server.predictor import PredictorCache
from cmrassist_server.qc_check import QualityChecker, parse_thresholds
from cmrassist_server.qc_store import QCStore, with_function

logger = logging.getLogger(__name__)

PREDICTION = "prediction"


def file_stamp(path: Optional[str]) -> Optional[float]:
    return os.path.getmtime(path) if path and os.path.isfile(path) else None


class QCInferTask(InferTask):
    """``POST /infer/qc?image=ID`` with params ``label`` (``prediction`` or a label tag) and ``threshold``.

    Args:
        checker: the QC checker (learned model when trained, rules always).
        segmentation: the served segmentation model, for ``label=prediction``.
        store: where each stored image's latest report is kept.
        threshold: default flag threshold.
    """

    def __init__(self, checker: QualityChecker, segmentation: PredictorCache, store: QCStore, *, threshold: float):
        super().__init__(type=InferType.OTHERS, labels=dict(CARDIAC_CLASSES), dimension=3,
                         description="QC without ground truth: predicted slice Dice and volume similarity, rule "
                         "checks, rebuilt 3D Dice, raw and corrected volumes", config={"label": PREDICTION,
                                                                                         "threshold": threshold})
        self.checker = checker
        self.segmentation = segmentation
        self.store = store
        self.threshold = threshold

    def info(self) -> Dict:
        loaded = self.checker.model()
        return {**super().info(), "trained": loaded is not None, "model_record": loaded[2] if loaded else None}

    def is_valid(self) -> bool:
        return True

    def __call__(self, request):
        context = request.get("cmrassist") or {}
        image_id, label_source = context.get("image_id"), request.get("label") or PREDICTION
        try:
            thresholds = parse_thresholds(request.get("threshold", self.threshold))
            image = read_image(request["image"])
            check_study_image(image)
            if image.GetDimension() != 3:
                raise InvalidInputError("QC checks one 3D frame; this image is a 4D cine. Make its ED or ES frame "
                                        "a study (the Annotate panel does) and check that.", status=422)
            start = time.time()
            if label_source == PREDICTION:
                if not self.segmentation.exists():
                    raise HTTPException(status_code=409, detail="No segmentation model has been trained yet, so there "
                                        "is no prediction to check: train one, or check a submitted label (label=final).")
                label = self.segmentation.get().segment(image)
                label_path = self.segmentation.checkpoint
            else:
                label_path = context.get("label_path")
                if not label_path or not os.path.isfile(label_path):
                    raise InvalidInputError(f"image {image_id!r} has no label tagged {label_source!r}", status=404)
                label = check_label(read_image(label_path), image)
                if label.ndim != 3:
                    raise InvalidInputError("QC checks a 3D label; this label is 4D", status=422)
            segmentation_s = time.time() - start
            report = self.checker.check(image, label, thresholds=thresholds)
        except InvalidInputError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None
        except ValueError as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        report.update(image=image_id, label=label_source, image_info=context.get("image_info") or {},
                      seconds={"qc": report.pop("seconds"), "segmentation": round(segmentation_s, 4)
                               if label_source == PREDICTION else 0.0})
        if image_id:
            report["stamp"] = stamp(request["image"], label_path, self.checker.checkpoint)
            self.store.save(image_id, report)
            report = with_function(self.store, report, context.get("siblings") or [])
        return None, report


def stamp(image_path: str, label_path: Optional[str], qc_checkpoint: Optional[str]) -> Dict:
    """What a stored report depends on: a report whose stamp differs from the current one is stale."""
    return {"image": file_stamp(image_path), "label": file_stamp(label_path), "qc_model": file_stamp(qc_checkpoint)}

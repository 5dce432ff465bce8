"""Infer task ``qc``: quality of a segmentation without ground truth, per slice and class (JSON only)."""

import os
import time
from typing import Dict, Optional

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from cmrassist_server.api.infer_params import QCParams
from cmrassist_server.core.checkpoints import ServedModel
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import SAFE_TAG, is_safe_id
from cmrassist_server.imaging.imageio import check_label, check_study_image, read_image
from cmrassist_server.qc.check import QualityChecker, parse_thresholds
from cmrassist_server.qc.store import QCStore, sibling_ids, with_function
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from CMRAssistCore.labels import CARDIAC_CLASSES

PREDICTION = "prediction"


def file_stamp(path: Optional[str]) -> Optional[float]:
    return os.path.getmtime(path) if path and os.path.isfile(path) else None


def stamp(image_path: str, label_path: Optional[str], qc_checkpoint: Optional[str]) -> Dict:
    """What a stored report depends on: a report whose stamp differs from the current one is stale."""
    return {"image": file_stamp(image_path), "label": file_stamp(label_path), "qc_model": file_stamp(qc_checkpoint)}


class QCInferTask(InferTask):
    """``POST /infer/qc?image=ID`` with params ``label`` (``prediction`` or a label tag) and ``threshold``.

    Args:
        checker: the QC checker (learned model when trained, rules always).
        segmentation: the served segmentation model, for ``label=prediction``.
        store: where each stored image's latest report is kept.
        threshold: default flag threshold.
    """

    #: The params this task reads, checked before it runs (``api/infer_params.py``).
    PARAMS = QCParams

    def __init__(
        self,
        checker: QualityChecker,
        segmentation: ServedModel[SegmentationPredictor],
        store: QCStore,
        *,
        threshold: float,
    ):
        super().__init__(
            type=InferType.OTHERS,
            labels=dict(CARDIAC_CLASSES),
            dimension=3,
            description="QC without ground truth: predicted slice Dice and volume similarity, rule "
            "checks, rebuilt 3D Dice, raw and corrected volumes",
            config={"label": PREDICTION, "threshold": threshold},
        )
        self.checker = checker
        self.segmentation = segmentation
        self.store = store
        self.threshold = threshold

    def info(self) -> Dict:
        served = self.checker.served
        return {**super().info(), **(served.describe() if served is not None else {"trained": False})}

    def is_valid(self) -> bool:
        return True

    def context(self, request: Dict, image_id: Optional[str], datastore: Datastore) -> Dict:
        """What QC checks, resolved on the server side (never a path a client sent), and the other phase's id."""
        tag = request.get("label") or PREDICTION
        if tag != PREDICTION and not is_safe_id(tag, SAFE_TAG):
            raise CMRAssistError(f"invalid label tag {tag!r}", 400)
        if tag != PREDICTION and image_id is None:
            raise CMRAssistError("an uploaded image has no stored labels: check its prediction", 422)
        context: Dict = {"image_id": image_id}
        if image_id is not None:
            context["image_info"] = info = datastore.get_image_info(image_id) or {}
            # The other phase of the same subject, from the datastore's image infos (in memory), for EF.
            context["siblings"] = sibling_ids(
                image_id, info, ((i, datastore.get_image_info(i) or {}) for i in datastore.list_images())
            )
            if tag != PREDICTION:
                context["label_path"] = datastore.get_label_uri(image_id, tag)
        return context

    def _label(self, image, source: str, context: Dict):
        """The label to check and the file it depends on."""
        if source == PREDICTION:
            predictor = self.segmentation.get()
            if predictor is None:
                raise CMRAssistError(
                    "No segmentation model has been trained yet, so there is no prediction to check: "
                    "train one, or check a submitted label (label=final).",
                    409,
                )
            return predictor.segment(image), self.segmentation.checkpoint
        label_path = context.get("label_path")
        if not label_path or not os.path.isfile(label_path):
            raise CMRAssistError(f"image {context.get('image_id')!r} has no label tagged {source!r}", 404)
        label = check_label(read_image(label_path), image)
        if label.ndim != 3:
            raise CMRAssistError("QC checks a 3D label; this label is 4D", 422)
        return label, label_path

    def __call__(self, request):
        context = request.get("cmrassist") or {}
        image_id, label_source = context.get("image_id"), request.get("label") or PREDICTION
        thresholds = parse_thresholds(request.get("threshold", self.threshold))
        image = read_image(request["image"])
        check_study_image(image)
        if image.GetDimension() != 3:
            raise CMRAssistError(
                "QC checks one 3D frame; this image is a 4D cine. Make its ED or ES frame a study "
                "(the Annotate panel does) and check that.",
                422,
            )
        start = time.time()
        label, label_path = self._label(image, label_source, context)
        segmentation_s = time.time() - start
        report = self.checker.check(image, label, thresholds=thresholds)
        report.update(
            image=image_id,
            label=label_source,
            image_info=context.get("image_info") or {},
            seconds={
                "qc": report.pop("seconds"),
                "segmentation": round(segmentation_s, 4) if label_source == PREDICTION else 0.0,
            },
        )
        if image_id:
            report["stamp"] = stamp(request["image"], label_path, self.checker.checkpoint)
            self.store.save(image_id, report)
            report = with_function(self.store, report, context.get("siblings") or [])
        return None, report

"""Infer task ``segmentation``: LV cavity, LV myocardium and RV cavity of a 3D frame or a 4D cine."""

import os
import tempfile
import time
from typing import Dict, Optional

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from cmrassist_server.api.infer_params import SegmentationParams
from cmrassist_server.core.checkpoints import ServedModel
from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import check_study_image, read_image, write_label_like
from cmrassist_server.segmentation.predictor import SegmentationPredictor, served_segmentation
from cmrassist_server.slice_position.network import PositionClassifier, clear_outside_lv
from CMRAssistCore.labels import CARDIAC_CLASSES

OUTSIDE_LV = ("keep", "empty")


class SegmentationInferTask(InferTask):
    """One-click segmentation; answers 409 with a clear message before any model has been trained.

    Request params: ``outside_lv`` ``keep`` (default) or ``empty`` (leave the slices that the slice-position
    classifier calls too basal or too apical unsegmented); ``device`` ``cpu`` or ``cuda`` (the server's by default).

    Args:
        served: the served segmentation model (reloaded whenever training publishes a better one).
        positions: the slice-position classifier (for ``outside_lv=empty``).
        settings: the app's ``engine`` and ``heart_window``, for models served on a request's other device.
    """

    #: The params this task reads, checked before it runs (``api/infer_params.py``).
    PARAMS = SegmentationParams

    def __init__(
        self,
        served: ServedModel[SegmentationPredictor],
        *,
        positions: Optional[PositionClassifier] = None,
        device: Optional[str] = None,
        settings: Optional[Dict] = None,
    ):
        super().__init__(
            type=InferType.SEGMENTATION,
            labels=dict(CARDIAC_CLASSES),
            dimension=3,
            description="2D slice-wise U-Net: LV cavity (3), LV myocardium (2), RV cavity (1)",
            config={"device": device or "auto", "outside_lv": list(OUTSIDE_LV)},
        )
        self.served = {default_device(device): served}
        self.positions = positions
        self.settings = settings or {}  # ``engine`` and ``heart_window`` for a request's other device

    def info(self) -> Dict:
        return {**super().info(), **next(iter(self.served.values())).describe()}

    def is_valid(self) -> bool:
        return True  # listed even before training, so clients can see it and its "trained" flag

    def predictor(self, device: Optional[str]) -> SegmentationPredictor:
        """The served model on ``device`` (the server's default when ``None``)."""
        device = default_device(device) if device else next(iter(self.served))
        if device not in self.served:
            checkpoint = next(iter(self.served.values())).checkpoint
            self.served[device] = served_segmentation(checkpoint, device, **self.settings)
        predictor = self.served[device].get()
        if predictor is None:
            raise CMRAssistError(
                "No segmentation model has been trained yet: start training with POST "
                "/train/segmentation (needs images with final labels), then try again.",
                409,
            )
        return predictor

    def __call__(self, request):
        outside_lv = request.get("outside_lv") or "keep"
        if outside_lv not in OUTSIDE_LV:
            raise CMRAssistError(f"outside_lv must be 'keep' or 'empty', not {outside_lv!r}", 422)
        predictor = self.predictor(request.get("device") if request.get("device") != "auto" else None)
        if outside_lv == "empty" and (self.positions is None or self.positions.model() is None):
            raise CMRAssistError(
                "outside_lv=empty needs a slice-position model: rank slices, set the cut points and "
                "POST /train/slice_position first",
                409,
            )
        image = read_image(request["image"])
        check_study_image(image)
        start = time.time()
        labels = predictor.segment(image)
        cleared = clear_outside_lv(labels, image, self.positions) if outside_lv == "empty" else None
        fd, out = tempfile.mkstemp(suffix=".nii.gz")  # MONAI Label sends the file, then removes it
        os.close(fd)
        write_label_like(labels, image, out)
        frames = 1 if image.GetDimension() == 3 else image.GetSize()[3]
        params = {
            "label_names": dict(CARDIAC_CLASSES),
            "frames": frames,
            "latencies": {"total": round(time.time() - start, 3)},
            "model": os.path.basename(next(iter(self.served.values())).checkpoint),
        }
        if cleared is not None:
            params["cleared_slices"] = cleared
        return out, params

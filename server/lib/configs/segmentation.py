"""Wiring of the segmentation model: its infer and train tasks share one checkpoint path."""

from typing import Dict, Optional

from cmrassist_server.core.conf import AppConf
from cmrassist_server.segmentation.predictor import served_segmentation
from cmrassist_server.slice_position.network import PositionClassifier

from ..infers.segmentation import SegmentationInferTask
from ..trainers.segmentation import SegmentationTrainTask


class SegmentationConfig:
    """The ``segmentation`` model: one checkpoint, served by the infer task, published by the train task."""

    name = "segmentation"

    def __init__(self, conf: AppConf):
        self.conf = conf
        self.checkpoint = conf.segmentation_checkpoint
        self.served = served_segmentation(conf.segmentation_checkpoint, conf.device, conf.engine, conf.heart_window)
        #: The slice-position classifier, for ``outside_lv=empty`` requests (set by the app when it serves one).
        self.positions: Optional[PositionClassifier] = None

    def infer(self) -> SegmentationInferTask:
        settings = {"engine": self.conf.engine, "heart_window": self.conf.heart_window}
        return SegmentationInferTask(self.served, positions=self.positions, device=self.conf.device, settings=settings)

    def trainer(self) -> SegmentationTrainTask:
        defaults: Dict = {
            "max_epochs": self.conf.train_max_epochs,
            "max_minutes": self.conf.train_max_minutes,
            "network": self.conf.network,
        }
        return SegmentationTrainTask(
            self.conf.segmentation_checkpoint,
            defaults=defaults,
            position_checkpoint=self.conf.position_checkpoint,
            group_checkpoint=self.conf.cam_group_checkpoint,
        )

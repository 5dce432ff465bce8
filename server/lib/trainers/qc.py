"""Train task ``qc``: builds the QC set from ``final`` labels and trains the QC network."""

from typing import Dict, Optional

from monailabel.interfaces.datastore import Datastore

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.training import TrainResult
from cmrassist_server.io.studies import training_items
from cmrassist_server.qc.training import QCTrainOptions, train_qc

from .base import CheckpointTrainTask


class QCTrainTask(CheckpointTrainTask):
    """Trains the QC model and publishes each better validation checkpoint.

    Args:
        checkpoint: served QC checkpoint path.
        segmentation_checkpoint: the served segmentation model (its predictions join the QC set).
        defaults: the app's default options.
    """

    options_type = QCTrainOptions

    def __init__(self, checkpoint: str, *, segmentation_checkpoint: Optional[str], defaults: Dict):
        super().__init__(
            checkpoint,
            "Train the QC model (slice Dice and volume similarity without ground truth) from final labels",
            defaults=defaults,
        )
        self.segmentation_checkpoint = segmentation_checkpoint

    def train(self, options: QCTrainOptions, datastore: Datastore) -> TrainResult:
        items = training_items(datastore)
        if len({it["subject"] for it in items}) < 2:
            raise CMRAssistError(
                f"QC training needs final labels of at least 2 subjects; the datastore has {len(items)} labels", 409
            )
        return train_qc(items, self.checkpoint, options, segmentation_checkpoint=self.segmentation_checkpoint)

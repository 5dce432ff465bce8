"""Train task ``qc``: builds the QC set from ``final`` labels and trains the QC network."""

import logging
from dataclasses import asdict
from typing import Dict, Optional

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.model_versions import archive, archive_served
from cmrassist_server.network import read_record
from cmrassist_server.qc_engine import QCTrainOptions, train_qc
from cmrassist_server.studies import training_items

logger = logging.getLogger(__name__)


class QCTrainTask(TrainTask):
    """Trains the QC model and publishes the best validation checkpoint atomically.

    Args:
        checkpoint: served QC checkpoint path.
        segmentation_checkpoint: the served segmentation model (its predictions join the QC set).
        defaults: default request params.
    """

    options_type = QCTrainOptions

    def __init__(self, checkpoint: str, *, segmentation_checkpoint: Optional[str], defaults: Dict):
        super().__init__("Train the QC model (slice Dice and volume similarity without ground truth) from final labels")
        self.checkpoint = checkpoint
        self.segmentation_checkpoint = segmentation_checkpoint
        self.defaults = defaults

    def config(self):
        return {**asdict(QCTrainOptions()), **self.defaults, "device": "cuda or cpu (auto)"}

    def stats(self):
        return read_record(self.checkpoint) or {}

    def __call__(self, request, datastore: Datastore):
        options = QCTrainOptions.from_request({**self.defaults, **request})
        archive_served(self.checkpoint)
        items = training_items(datastore)
        if len({it["subject"] for it in items}) < 2:
            raise ValueError(f"QC training needs final labels of at least 2 subjects; the datastore has {len(items)} labels")
        result = train_qc(items, self.checkpoint, options, segmentation_checkpoint=self.segmentation_checkpoint)
        if result.published:
            archive(self.checkpoint)  # earlier versions stay available
        return {"published": result.published, "best_val": result.best_val, "epochs": result.epochs}

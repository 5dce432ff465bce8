"""Train task ``segmentation``: learns from the datastore's ``final`` labels."""

import logging
from dataclasses import asdict
from typing import Dict

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.engine import TrainOptions, train_segmentation
from cmrassist_server.label_selection import selected_items
from cmrassist_server.model_versions import archive
from cmrassist_server.network import read_record

logger = logging.getLogger(__name__)


class SegmentationTrainTask(TrainTask):
    """Trains the LV/MYO/RV model and publishes the best validation checkpoint atomically.

    Args:
        checkpoint: served checkpoint path.
        defaults: default request params (``max_epochs``, ``max_minutes``, ``network``).
    """

    def __init__(self, checkpoint: str, *, defaults: Dict):
        super().__init__("Train the 2D LV cavity / LV myocardium / RV cavity model from final labels")
        self.checkpoint = checkpoint
        self.defaults = defaults

    def config(self):
        return {**asdict(TrainOptions()), **self.defaults, "device": "cuda or cpu (auto)"}

    def stats(self):
        return read_record(self.checkpoint) or {}

    def __call__(self, request, datastore: Datastore):
        options = TrainOptions.from_request({**self.defaults, **request})
        items, finals = selected_items(datastore, options)
        if len(finals) < 2:
            raise ValueError(f"training needs at least 2 images with final labels; the datastore has {len(finals)}")
        result = train_segmentation(items, self.checkpoint, options, val_items=finals)
        if result.published:
            archive(self.checkpoint)  # earlier versions stay available
        return {"published": result.published, "best_val_dice": result.best_val, "epochs": result.epochs}

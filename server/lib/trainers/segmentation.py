"""Train task ``segmentation``: learns from the datastore's ``final`` labels."""

import logging
from typing import Dict

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.engine import TrainOptions, train_segmentation
from cmrassist_server.network import read_record
from cmrassist_server.studies import training_items

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
        return {**self.defaults, "val_split": 0.2, "device": "cuda or cpu (auto)", "from_scratch": False}

    def stats(self):
        return read_record(self.checkpoint) or {}

    def __call__(self, request, datastore: Datastore):
        options = TrainOptions.from_request({**self.defaults, **request})
        items = training_items(datastore)
        if len(items) < 2:
            raise ValueError(f"training needs at least 2 images with final labels; the datastore has {len(items)}")
        result = train_segmentation(items, self.checkpoint, options)
        return {"published": result.published, "best_val_dice": result.best_val, "epochs": result.epochs}

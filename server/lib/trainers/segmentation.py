"""Train task ``segmentation``: learns from the datastore's labels chosen by the request (``final`` by default)."""

import logging
from dataclasses import asdict
from typing import Callable, Dict, Optional

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.cam_training import prior_source, training_prior
from cmrassist_server.engine import TrainOptions, train_segmentation
from cmrassist_server.label_selection import selected_items
from cmrassist_server.model_versions import archive, archive_served
from cmrassist_server.network import read_record
from cmrassist_server.studies import training_items

logger = logging.getLogger(__name__)


class SegmentationTrainTask(TrainTask):
    """Trains the LV/MYO/RV model and publishes the best validation checkpoint atomically.

    Args:
        checkpoint: served checkpoint path.
        defaults: default request params (``max_epochs``, ``max_minutes``, ``network``).
        position_checkpoint: the served slice-position classifier (first choice of CAM prior source).
        group_checkpoint: where the disease-group classifier of the CAM prior fallback is kept.
    """

    def __init__(self, checkpoint: str, *, defaults: Dict, position_checkpoint: str, group_checkpoint: str):
        super().__init__("Train the 2D LV cavity / LV myocardium / RV cavity model from final labels")
        self.checkpoint = checkpoint
        self.defaults = defaults
        self.position_checkpoint = position_checkpoint
        self.group_checkpoint = group_checkpoint
        #: The app's datastore, set by the serving app so that :meth:`precheck` can look at the labelled images.
        self.datastore: Optional[Callable[[], Datastore]] = None

    def config(self):
        return {**asdict(TrainOptions()), **self.defaults, "device": "cuda or cpu (auto)"}

    def stats(self):
        return read_record(self.checkpoint) or {}

    def precheck(self, options: TrainOptions) -> None:
        """Refuse (409) a CAM prior that has nothing to come from, before a training process starts."""
        if options.cam_prior and self.datastore is not None:
            prior_source(training_items(self.datastore()), position_checkpoint=self.position_checkpoint)

    def __call__(self, request, datastore: Datastore):
        options = TrainOptions.from_request({**self.defaults, **request})
        archive_served(self.checkpoint)
        items, finals = selected_items(datastore, options)
        if len(finals) < 2:
            raise ValueError(f"training needs at least 2 images with final labels; the datastore has {len(finals)}")
        prior = None
        if options.cam_prior:
            prior = training_prior(finals, position_checkpoint=self.position_checkpoint,
                                   group_checkpoint=self.group_checkpoint, device=options.device, seed=options.seed)
        result = train_segmentation(items, self.checkpoint, options, val_items=finals, prior=prior)
        if result.published:
            archive(self.checkpoint)  # earlier versions stay available
        return {"published": result.published, "best_val": result.best_val, "epochs": result.epochs}

"""Train task ``segmentation``: learns from the datastore's labels chosen by the request (``final`` by default)."""

from typing import Callable, Dict, Optional

from monailabel.interfaces.datastore import Datastore

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.training import TrainResult
from cmrassist_server.io.studies import training_items
from cmrassist_server.segmentation.cam_training import prior_source, training_prior
from cmrassist_server.segmentation.label_selection import selected_items
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation

from .base import CheckpointTrainTask


class SegmentationTrainTask(CheckpointTrainTask):
    """Trains the LV/MYO/RV model and publishes each better validation checkpoint.

    Args:
        checkpoint: served checkpoint path.
        defaults: the app's default options (``max_epochs``, ``max_minutes``, ``network``).
        position_checkpoint: the served slice-position classifier (first choice of CAM prior source).
        group_checkpoint: where the disease-group classifier of the CAM prior fallback is kept.
    """

    options_type = SegmentationTrainOptions

    def __init__(self, checkpoint: str, *, defaults: Dict, position_checkpoint: str, group_checkpoint: str):
        super().__init__(
            checkpoint, "Train the 2D LV cavity / LV myocardium / RV cavity model from final labels", defaults=defaults
        )
        self.position_checkpoint = position_checkpoint
        self.group_checkpoint = group_checkpoint
        #: The app's datastore, set by the serving app so that :meth:`precheck` can look at the labelled images.
        self.datastore: Optional[Callable[[], Datastore]] = None

    def precheck(self, options: SegmentationTrainOptions) -> None:
        """Refuse (409) a CAM prior that has nothing to come from, before a training process starts."""
        if options.cam_prior and self.datastore is not None:
            prior_source(training_items(self.datastore()), position_checkpoint=self.position_checkpoint)

    def train(self, options: SegmentationTrainOptions, datastore: Datastore) -> TrainResult:
        items, finals = selected_items(datastore, options)
        if len(finals) < 2:
            raise CMRAssistError(
                f"training needs at least 2 images with final labels; the datastore has {len(finals)}", 409
            )
        prior = None
        if options.cam_prior:
            prior = training_prior(
                finals,
                position_checkpoint=self.position_checkpoint,
                group_checkpoint=self.group_checkpoint,
                device=options.device,
                seed=options.seed,
            )
        return train_segmentation(items, self.checkpoint, options, val_items=finals, prior=prior)

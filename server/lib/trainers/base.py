"""The one base class of the app's MONAI Label train tasks: typed options, advertised choices, archived versions."""

import logging
from typing import Any, Dict, Optional, Type

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.core.checkpoints import read_record
from cmrassist_server.core.model_versions import archive, archive_served
from cmrassist_server.core.options import TrainOptions
from cmrassist_server.core.training import TrainResult

logger = logging.getLogger(__name__)


class CheckpointTrainTask(TrainTask):
    """A train task that publishes one checkpoint through the one training loop.

    Subclasses set :attr:`options_type` and implement :meth:`train`; :meth:`precheck` may refuse (409) a request
    that cannot train yet, before MONAI Label starts a training process (``api.train`` calls it).

    Args:
        checkpoint: the served checkpoint's path.
        description: what the task trains (shown in ``GET /info/``).
        defaults: the app's defaults for some options (e.g. ``max_minutes`` from the app's conf).
    """

    options_type: Type[TrainOptions] = TrainOptions

    def __init__(self, checkpoint: str, description: str, *, defaults: Optional[Dict[str, Any]] = None):
        super().__init__(description)
        self.checkpoint = checkpoint
        self.defaults = dict(defaults or {})

    def config(self) -> Dict[str, Any]:
        """Options with their defaults; choices as lists, default first (what the Train panel offers)."""
        return self.options_type.advertised(self.defaults)

    def stats(self) -> Dict[str, Any]:
        return read_record(self.checkpoint) or {}

    def options(self, request: Dict[str, Any]) -> TrainOptions:
        """Checked options of a request (the app's defaults under the request's params)."""
        return self.options_type.from_request({**self.defaults, **request})

    def precheck(self, options: TrainOptions) -> None:
        """Refuse (``CMRAssistError`` 409) what cannot train now; nothing by default."""

    def train(self, options: TrainOptions, datastore: Datastore) -> TrainResult:
        raise NotImplementedError

    def __call__(self, request: Dict[str, Any], datastore: Datastore) -> Dict[str, Any]:
        options = self.options(request)
        archive_served(self.checkpoint)  # a run stopped early published without archiving: keep that model
        result = self.train(options, datastore)
        if result.published:
            archive(self.checkpoint)  # earlier versions stay available
        return result.summary()

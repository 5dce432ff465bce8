"""Wiring of the slice-position classifier: its infer and train tasks share one checkpoint path."""

from cmrassist_server.core.conf import AppConf
from cmrassist_server.slice_position.network import PositionClassifier

from ..infers.slice_position import PositionInferTask
from ..trainers.slice_position import PositionTrainTask


class PositionConfig:
    """The ``slice_position`` model.

    Args:
        conf: the app configuration.
        ranking_db: the ranking store's SQLite file (training reads the derived positions from it).
    """

    name = "slice_position"

    def __init__(self, conf: AppConf, ranking_db: str):
        self.conf = conf
        self.checkpoint = conf.position_checkpoint
        self.ranking_db = ranking_db
        self.classifier = PositionClassifier(conf.position_checkpoint, device=conf.device)

    def infer(self) -> PositionInferTask:
        return PositionInferTask(self.classifier)

    def trainer(self) -> PositionTrainTask:
        return PositionTrainTask(
            self.conf.position_checkpoint,
            ranking_db=self.ranking_db,
            defaults={"max_minutes": self.conf.train_max_minutes},
        )

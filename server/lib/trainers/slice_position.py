"""Train task ``slice_position``: the slice-position classifier from the ranking's derived positions."""

import os
from typing import Dict, Optional

from monailabel.interfaces.datastore import Datastore

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.training import TrainResult, report
from cmrassist_server.slice_position.data import SlicePositions, labelled_stacks, ranking_positions
from cmrassist_server.slice_position.ranking_store import RankingStore
from cmrassist_server.slice_position.training import PositionTrainOptions, train_position

from .base import CheckpointTrainTask


class PositionTrainTask(CheckpointTrainTask):
    """Trains the classifier from the ranked slices (positions from the reviewer's cut points).

    Args:
        checkpoint: served checkpoint path.
        ranking_db: the ranking store's SQLite file.
        defaults: the app's default options.
    """

    options_type = PositionTrainOptions

    def __init__(self, checkpoint: str, *, ranking_db: str, defaults: Dict):
        super().__init__(
            checkpoint,
            "Train the slice-position classifier (too basal / in the LV / too apical) from ranked slices",
            defaults=defaults,
        )
        self.ranking_db = ranking_db

    def precheck(self, options: Optional[PositionTrainOptions] = None) -> SlicePositions:
        """The ranked slices' positions; refuses (409) when there is nothing to learn from yet."""
        store = RankingStore(self.ranking_db) if os.path.isfile(self.ranking_db) else None
        if store is None or not store.progress()["annotators"]:
            raise CMRAssistError("no slices have been ranked yet: rank some batches in the Rank panel first", 409)
        return ranking_positions(store)  # 409 without cut points

    def train(self, options: PositionTrainOptions, datastore: Datastore) -> TrainResult:
        positions = self.precheck(options)
        known = set(datastore.list_images())
        positions = {key: p for key, p in positions.items() if key[0] in known}  # studies removed since ranked

        def subject(image_id: str) -> str:
            return str((datastore.get_image_info(image_id) or {}).get("patient") or image_id)

        stacks = labelled_stacks(
            positions,
            datastore.get_image_uri,
            subject,
            progress=lambda done, total: report("loading", images=done, total=total),
        )
        if len({s.subject for s in stacks}) < 2:
            raise CMRAssistError("slice-position training needs ranked slices of at least 2 patients", 409)
        return train_position(
            stacks, self.checkpoint, options, record_extra={"labels": "ranking", "frames": len(stacks)}
        )

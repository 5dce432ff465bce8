"""Train task ``slice_position``: the slice-position classifier from the ranking's derived positions."""

import logging
import os
from dataclasses import asdict
from typing import Dict, Optional

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.engine import report
from cmrassist_server.model_versions import archive, archive_served
from cmrassist_server.network import read_record
from cmrassist_server.position_data import SlicePositions, labelled_stacks, ranking_positions
from cmrassist_server.position_engine import PositionTrainOptions, train_position
from cmrassist_server.ranking_store import RankingError, RankingStore

logger = logging.getLogger(__name__)


class PositionTrainTask(TrainTask):
    """Trains the classifier from the ranked slices (positions from the reviewer's cut points).

    Args:
        checkpoint: served checkpoint path.
        ranking_db: the ranking store's SQLite file.
        defaults: default request params.
    """

    options_type = PositionTrainOptions

    def __init__(self, checkpoint: str, *, ranking_db: str, defaults: Dict):
        super().__init__("Train the slice-position classifier (too basal / in the LV / too apical) from ranked slices")
        self.checkpoint = checkpoint
        self.ranking_db = ranking_db
        self.defaults = defaults

    def config(self):
        return {**asdict(PositionTrainOptions()), **self.defaults, "device": "cuda or cpu (auto)"}

    def stats(self):
        return read_record(self.checkpoint) or {}

    def precheck(self, options: Optional[PositionTrainOptions] = None) -> SlicePositions:
        """The ranked slices' positions; refuses (409) when there is nothing to learn from yet."""
        store = RankingStore(self.ranking_db) if os.path.isfile(self.ranking_db) else None
        if store is None or not store.progress()["annotators"]:
            raise RankingError("no slices have been ranked yet: rank some batches in the Rank panel first", 409)
        return ranking_positions(store)  # 409 without cut points

    def __call__(self, request, datastore: Datastore):
        options = PositionTrainOptions.from_request({**self.defaults, **request})
        archive_served(self.checkpoint)
        positions = self.precheck(options)
        known = set(datastore.list_images())
        positions = {key: p for key, p in positions.items() if key[0] in known}  # studies removed since ranked

        def subject(image_id: str) -> str:
            return str((datastore.get_image_info(image_id) or {}).get("patient") or image_id)

        stacks = labelled_stacks(positions, datastore.get_image_uri, subject,
                                 progress=lambda done, total: report("loading", images=done, total=total))
        if len({s.subject for s in stacks}) < 2:
            raise ValueError("slice-position training needs ranked slices of at least 2 patients")
        result = train_position(stacks, self.checkpoint, options,
                                record_extra={"labels": "ranking", "frames": len(stacks)})
        if result.published:
            archive(self.checkpoint)  # earlier versions stay available
        return {"published": result.published, "best_val": result.best_val, "epochs": result.epochs}

"""Where a short-axis slice lies (too basal / in the LV / too apical): the ranking store and service that
collect annotators' orderings, and the classifier trained from them.
"""

from cmrassist_server.slice_position.network import POSITIONS, PositionClassifier, PositionSpec, load_position
from cmrassist_server.slice_position.ranking import RankingService
from cmrassist_server.slice_position.ranking_store import RankingStore
from cmrassist_server.slice_position.training import PositionTrainOptions, train_position

__all__ = [
    "POSITIONS",
    "PositionClassifier",
    "PositionSpec",
    "PositionTrainOptions",
    "RankingService",
    "RankingStore",
    "load_position",
    "train_position",
]

"""Quality control without ground truth: the QC network and its training set (corruptions, weak snapshots),
rule checks, the 3D Dice rebuild and volume correction, and the per-image report store.
"""

from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.corruptions import corrupt
from cmrassist_server.qc.rules import check_rules
from cmrassist_server.qc.store import QCStore
from cmrassist_server.qc.training import QCTrainOptions, train_qc

__all__ = ["QCStore", "QCTrainOptions", "QualityChecker", "check_rules", "corrupt", "train_qc"]

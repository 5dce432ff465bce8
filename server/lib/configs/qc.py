"""Wiring of the QC model: infer task, train task, scoring method and review strategy share its checkpoint; the
infer task checks through the served segmentation model (one click), scoring and the study report through the
batch segmentation (the fold ensemble while it serves, ``segmentation/batch.py``)."""

from cmrassist_server.core.checkpoints import ServedModel
from cmrassist_server.core.conf import AppConf
from cmrassist_server.core.foreground import Foreground
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.store import QCStore
from cmrassist_server.segmentation.batch import served_batch
from cmrassist_server.segmentation.predictor import SegmentationPredictor

from ..activelearning.qc import ReviewFirst
from ..infers.qc import QCInferTask
from ..scoring.qc import QCScoring
from ..trainers.qc import QCTrainTask


class QCConfig:
    """The ``qc`` model.

    Args:
        conf: the app configuration.
        segmentation: the served segmentation model (QC checks its predictions).
        results_folder: where per-image QC reports are kept.
    """

    name = "qc"

    def __init__(self, conf: AppConf, segmentation: ServedModel[SegmentationPredictor], results_folder: str):
        self.conf = conf
        self.checkpoint = conf.qc_checkpoint
        self.segmentation = segmentation
        self.checker = QualityChecker(conf.qc_checkpoint, device=conf.device, segmentation=segmentation)
        #: Batch work's segmentation: scoring segments unlabelled frames with it and its QC looks through it.
        self.batch = served_batch(conf.segmentation_checkpoint, conf.device)
        self.batch_checker = QualityChecker(conf.qc_checkpoint, device=conf.device, segmentation=self.batch)
        self.store = QCStore(results_folder)

    def infer(self) -> QCInferTask:
        return QCInferTask(self.checker, self.segmentation, self.store, threshold=self.conf.qc_threshold)

    def trainer(self) -> QCTrainTask:
        return QCTrainTask(
            self.conf.qc_checkpoint,
            segmentation_checkpoint=self.conf.segmentation_checkpoint,
            defaults={"max_minutes": self.conf.train_max_minutes},
        )

    def scoring(self) -> QCScoring:
        return QCScoring(
            self.batch_checker,
            self.batch,
            self.store,
            threshold=self.conf.qc_threshold,
            foreground=Foreground(self.conf.model_dir),
        )

    def strategy(self) -> ReviewFirst:
        return ReviewFirst(self.store)

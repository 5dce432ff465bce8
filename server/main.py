"""CMRAssist MONAI Label app: short-axis cine MRI segmentation (LV cavity, LV myocardium, RV cavity), QC, slice
position and label versions. This file only wires: the work lives in ``cmrassist_server`` (see
``docs/architecture.md``) and the MONAI Label tasks in ``lib/``.

Run with ``cmrassist serve --studies DIR`` (or ``monailabel start_server --app server --studies DIR --host
127.0.0.1 --conf model_dir DIR`` from an activated venv).
"""

import os
import sys
from typing import Dict

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.annotations.review import VersionService
from cmrassist_server.annotations.versions import LabelVersions
from cmrassist_server.api import install_routes
from cmrassist_server.core.conf import AppConf
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.datastore import CheckedDatastore, stored_image_id
from cmrassist_server.io.dicom.dicomweb import DicomWebCineDatastore
from cmrassist_server.reporting.phases import model_phases
from cmrassist_server.slice_position.ranking import RankingService
from cmrassist_server.slice_position.ranking_store import RankingStore
from lib.configs.qc import QCConfig
from lib.configs.segmentation import SegmentationConfig
from lib.configs.slice_position import PositionConfig
from lib.infers.propagate import PropagateInferTask


class CMRAssistApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]):
        self.app_conf = AppConf.parse(conf, app_dir)
        self.local = not studies.startswith(("http://", "https://"))
        # App state lives beside a local datastore (with the model folder for a remote one).
        self.state_dir = os.path.join(studies, ".cmrassist") if self.local else self.app_conf.model_dir
        segmentation = SegmentationConfig(self.app_conf)
        self.qc = QCConfig(
            self.app_conf, segmentation.served, os.path.join(self.state_dir, "qc" if self.local else "qc-results")
        )
        position = PositionConfig(self.app_conf, os.path.join(self.state_dir, "ranking.sqlite"))
        segmentation.positions = position.classifier
        self.models = {SegmentationConfig.name: segmentation, QCConfig.name: self.qc, PositionConfig.name: position}
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="CMRAssist",
            description="Short-axis cine MRI: LV cavity, LV myocardium and RV cavity",
            version="0.1.0",
        )
        if "monailabel.app" in sys.modules:  # serving (not a train/scoring child process)
            self._serve(sys.modules["monailabel.app"].app, position.ranking_db)

    def _serve(self, app, ranking_db: str) -> None:
        """Routes, the ranking service (synced with the studies) and the train tasks' access to the datastore."""
        self._trainers[SegmentationConfig.name].datastore = self.datastore  # for its precheck
        self.ranking = RankingService(
            RankingStore(ranking_db), self.datastore, os.path.join(self.state_dir, "thumbnails")
        )
        self.ranking.sync()
        install_routes(
            app,
            trainers=self._trainers,
            ranking=self.ranking,
            checkpoints={name: cfg.checkpoint for name, cfg in self.models.items()},
            versions=VersionService(self._versions(), self.datastore) if self.local else None,
        )

    def init_datastore(self) -> Datastore:
        if not self.local:  # a PACS (DICOMweb): its short-axis cines, cached beside the models (io/dicom/dicomweb.py)
            phases = model_phases(self.models[SegmentationConfig.name].served)
            return DicomWebCineDatastore(self.studies, os.path.join(self.state_dir, "dicomweb"), phases=phases)
        datastore = CheckedDatastore(self.studies, extensions=("*.nii.gz", "*.nii", "*.nrrd"), auto_reload=False)
        datastore.versions = self._versions()
        return datastore

    def _versions(self) -> LabelVersions:
        """Label versions of a local datastore (one store per app, shared by the datastore and the endpoints)."""
        if getattr(self, "_label_versions", None) is None:
            self._label_versions = LabelVersions(os.path.join(self.studies, ".cmrassist", "versions"))
        return self._label_versions

    def init_infers(self) -> Dict[str, InferTask]:
        return {**{name: cfg.infer() for name, cfg in self.models.items()}, "propagate": PropagateInferTask()}

    def init_trainers(self) -> Dict[str, TrainTask]:
        return {name: cfg.trainer() for name, cfg in self.models.items()}

    def init_scoring_methods(self) -> Dict[str, ScoringMethod]:
        return {QCConfig.name: self.qc.scoring()}

    def init_strategies(self) -> Dict[str, Strategy]:
        return {**super().init_strategies(), QCConfig.name: self.qc.strategy()}

    def infer(self, request, datastore=None):
        """Checks the model and image first; a task with a ``context`` hook resolves its inputs on the server."""
        model = request.get("model")
        if model not in self._infers:
            raise CMRAssistError(f"unknown model {model!r}; available: {sorted(self._infers)}", 404)
        datastore = datastore or self.datastore()
        image_id = stored_image_id(request.get("image"), datastore)
        context = getattr(self._infers[model], "context", None)
        if context is not None:
            request["cmrassist"] = context(request, image_id, datastore)
        return super().infer(request, datastore)

    def train(self, request):
        model = request.get("model")
        if model not in self._trainers:
            raise CMRAssistError(f"unknown model {model!r}; available: {sorted(self._trainers)}", 404)
        return super().train(request)

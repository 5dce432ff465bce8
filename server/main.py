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

from cmrassist_server.annotations.versions import LabelVersions
from cmrassist_server.api.infer import run_model
from cmrassist_server.api.serving import start_serving
from cmrassist_server.core.conf import AppConf
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.process import background_child
from cmrassist_server.io.datastore import CheckedDatastore
from cmrassist_server.io.dicom.dicomweb import DicomWebCineDatastore
from cmrassist_server.reporting.phases import model_phases
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
            self._trainers[SegmentationConfig.name].datastore = self.datastore  # for its precheck
            self.ranking = start_serving(self, sys.modules["monailabel.app"].app)
        else:
            background_child()  # training or scoring: ends with the server, yields the CPU to its requests

    def init_datastore(self) -> Datastore:
        if not self.local:  # a PACS (DICOMweb): its short-axis cines, cached beside the models (io/dicom/dicomweb.py)
            phases = model_phases(self.models[SegmentationConfig.name].served)
            return DicomWebCineDatastore(self.studies, os.path.join(self.state_dir, "dicomweb"), phases=phases)
        return CheckedDatastore(self.studies, versions=self.label_versions(), max_voxels=self.app_conf.max_voxels)

    def label_versions(self) -> LabelVersions:
        """Label versions of a local datastore (one store per app, shared by the datastore and the endpoints)."""
        if getattr(self, "_label_versions", None) is None:
            self._label_versions = LabelVersions(os.path.join(self.studies, ".cmrassist", "versions"))
        return self._label_versions

    def info(self):
        return {**super().info(), "shipped_models": getattr(self, "shipped", {})}

    def init_infers(self) -> Dict[str, InferTask]:
        return {**{name: cfg.infer() for name, cfg in self.models.items()}, "propagate": self.propagate_task()}

    def propagate_task(self) -> PropagateInferTask:
        """Propagation, checked through-plane by the served segmentation model."""
        return PropagateInferTask(segmentation=self.models[SegmentationConfig.name].served)

    def init_trainers(self) -> Dict[str, TrainTask]:
        return {name: cfg.trainer() for name, cfg in self.models.items()}

    def init_scoring_methods(self) -> Dict[str, ScoringMethod]:
        return {QCConfig.name: self.qc.scoring()}

    def init_strategies(self) -> Dict[str, Strategy]:
        return {**super().init_strategies(), QCConfig.name: self.qc.strategy()}

    def infer(self, request, datastore=None):
        """Every inference: checked and resolved on the server (``api/infer.run_model``)."""
        return run_model(self, request, datastore or self.datastore())

    def train(self, request):
        model = request.get("model")
        if model not in self._trainers:
            raise CMRAssistError(f"unknown model {model!r}; available: {sorted(self._trainers)}", 404)
        return super().train(request)

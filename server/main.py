"""CMRAssist MONAI Label app: short-axis cine MRI segmentation (LV cavity, LV myocardium, RV cavity).

Run with ``monailabel start_server --app server --studies DIR [--conf model_dir DIR]``.
"""

import logging
import os
import re
import sys
import tempfile
from typing import Dict

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.conf import AppConf
from cmrassist_server.datastore import SAFE_TAG, CheckedDatastore, check_id
from cmrassist_server.ranking_api import RankingService, install_ranking_routes
from cmrassist_server.qc_store import sibling_ids
from cmrassist_server.ranking_store import RankingStore
from cmrassist_server.routes import install_train_checks
from lib.configs.qc import QCConfig
from lib.configs.slice_position import PositionConfig
from lib.configs.segmentation import SegmentationConfig

logger = logging.getLogger(__name__)

# Paths the infer endpoint itself writes for uploaded files (tempfile.NamedTemporaryFile in the temp dir).
_UPLOAD_TMP = re.compile(r"^tmp[A-Za-z0-9_]+(\.nii(\.gz)?|\.nrrd)$")


class CMRAssistApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]):
        self.app_conf = AppConf.parse(conf, app_dir)
        segmentation = SegmentationConfig(self.app_conf)
        local = not studies.startswith(("http://", "https://"))
        results = os.path.join(studies, ".cmrassist", "qc") if local else os.path.join(self.app_conf.model_dir, "qc-results")
        self.qc = QCConfig(self.app_conf, segmentation.predictors, results)
        # Ranking state lives beside a local datastore (with the model folder for a remote one).
        state = os.path.join(studies, ".cmrassist") if local else self.app_conf.model_dir
        ranking_db = os.path.join(state, "ranking.sqlite")
        position = PositionConfig(self.app_conf, ranking_db)
        self.models = {SegmentationConfig.name: segmentation, QCConfig.name: self.qc, PositionConfig.name: position}
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="CMRAssist",
                         description="Short-axis cine MRI: LV cavity, LV myocardium and RV cavity", version="0.1.0")
        if "monailabel.app" in sys.modules:  # serving (not a train/scoring child process)
            install_train_checks(sys.modules["monailabel.app"].app, self._trainers)
            self.ranking = RankingService(RankingStore(ranking_db), self.datastore,
                                          os.path.join(state, "thumbnails"))
            self.ranking.sync()
            install_ranking_routes(sys.modules["monailabel.app"].app, self.ranking)

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        return CheckedDatastore(self.studies, extensions=("*.nii.gz", "*.nii", "*.nrrd"), auto_reload=False)

    def init_infers(self) -> Dict[str, InferTask]:
        return {name: cfg.infer() for name, cfg in self.models.items()}

    def init_trainers(self) -> Dict[str, TrainTask]:
        return {name: cfg.trainer() for name, cfg in self.models.items()}

    def init_scoring_methods(self) -> Dict[str, ScoringMethod]:
        return {QCConfig.name: self.qc.scoring()}

    def init_strategies(self) -> Dict[str, Strategy]:
        return {**super().init_strategies(), QCConfig.name: self.qc.strategy()}

    def infer(self, request, datastore=None):
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {sorted(self._infers)}")
        image = request.get("image")
        datastore = datastore or self.datastore()
        uploaded = True
        if isinstance(image, str):
            uploaded = os.path.dirname(image) == tempfile.gettempdir() and _UPLOAD_TMP.match(os.path.basename(image))
            if not uploaded:
                check_id(image)
                datastore.get_image_uri(image)  # 404 for unknown ids
        if model == QCConfig.name:
            request["cmrassist"] = self._qc_context(request, None if uploaded else image, datastore)
        return super().infer(request, datastore)

    @staticmethod
    def _qc_context(request: Dict, image_id, datastore: Datastore) -> Dict:
        """Resolve what QC checks on the server side: never a path a client sent."""
        tag = request.get("label") or "prediction"
        if tag != "prediction" and (not isinstance(tag, str) or not SAFE_TAG.match(tag)):
            raise HTTPException(status_code=400, detail=f"invalid label tag {tag!r}")
        if tag != "prediction" and image_id is None:
            raise HTTPException(status_code=422, detail="an uploaded image has no stored labels: check its prediction")
        context = {"image_id": image_id}
        if image_id is not None:
            context["image_info"] = info = datastore.get_image_info(image_id) or {}
            # The other phase of the same subject, from the datastore's image infos (in memory), for EF.
            context["siblings"] = sibling_ids(image_id, info, ((i, datastore.get_image_info(i) or {})
                                                                for i in datastore.list_images()))
            if tag != "prediction":
                context["label_path"] = datastore.get_label_uri(image_id, tag)
        return context

    def train(self, request):
        model = request.get("model")
        if model not in self._trainers:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {sorted(self._trainers)}")
        return super().train(request)

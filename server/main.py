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
from cmrassist_server.routes import install_model_version_routes, install_train_checks
from cmrassist_server.versions import LabelVersions
from cmrassist_server.versions_api import VersionService, install_version_routes
from lib.configs.qc import QCConfig
from lib.configs.slice_position import PositionConfig
from lib.infers.propagate import PropagateInferTask
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
        segmentation.positions = position.classifier
        self.models = {SegmentationConfig.name: segmentation, QCConfig.name: self.qc, PositionConfig.name: position}
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="CMRAssist",
                         description="Short-axis cine MRI: LV cavity, LV myocardium and RV cavity", version="0.1.0")
        if "monailabel.app" in sys.modules:  # serving (not a train/scoring child process)
            self._trainers[SegmentationConfig.name].datastore = self.datastore  # for its precheck
            install_train_checks(sys.modules["monailabel.app"].app, self._trainers)
            install_model_version_routes(sys.modules["monailabel.app"].app, {
                SegmentationConfig.name: self.app_conf.segmentation_checkpoint, QCConfig.name: self.app_conf.qc_checkpoint,
                PositionConfig.name: self.app_conf.position_checkpoint})
            self.ranking = RankingService(RankingStore(ranking_db), self.datastore,
                                          os.path.join(state, "thumbnails"))
            self.ranking.sync()
            install_ranking_routes(sys.modules["monailabel.app"].app, self.ranking)
            if local:
                install_version_routes(sys.modules["monailabel.app"].app, VersionService(self._versions(), self.datastore))

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
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
        if model == "propagate":
            if uploaded:
                raise HTTPException(status_code=422, detail="propagation works on a stored cine (its labelled frame "
                                    "is found in the datastore): upload the cine as a study first")
            request["cmrassist"] = self._propagation_context(request, image, datastore)
            if str(request.get("store", "")).strip().lower() in ("1", "true", "yes"):
                request["save_label"], request["label_tag"] = True, "propagated"
        return super().infer(request, datastore)

    @staticmethod
    def _propagation_context(request: Dict, cine_id: str, datastore: Datastore) -> Dict:
        """The labelled frame to propagate: the ``source`` study named, else the cine's ED frame study, else any."""
        cine = datastore.get_image_info(cine_id) or {}

        def final_of(image_id: str):
            path = datastore.get_label_uri(image_id, "final")
            return path if path and os.path.isfile(path) else None

        source = request.get("source") or None
        if source:
            check_id(str(source), "source study id")
            datastore.get_image_uri(source)  # 404 for unknown ids
            if not final_of(source):
                raise HTTPException(status_code=404, detail=f"study {source!r} has no final label to propagate")
            candidates = [source]
        else:
            frames = {}  # labelled frame studies of this cine -> their frame number
            for image_id in datastore.list_images():
                info = datastore.get_image_info(image_id) or {}
                mine = info.get("source_image") == cine_id or (
                    cine.get("patient") and info.get("patient") == cine.get("patient") and info.get("frame"))
                if image_id != cine_id and mine and final_of(image_id):
                    frames[image_id] = int(info.get("frame") or 0)
            ed = cine.get("ed_frame")
            candidates = sorted(frames, key=lambda i: (frames[i] != ed, frames[i], i))
        if not candidates:
            return {}
        chosen = candidates[0]
        frame = (datastore.get_image_info(chosen) or {}).get("frame")
        if not frame:
            raise HTTPException(status_code=422, detail=f"study {chosen!r} does not say which cine frame it is")
        return {"source": chosen, "source_frame": int(frame), "source_label": final_of(chosen),
                "source_image": datastore.get_image_uri(chosen)}

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

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
from monailabel.interfaces.tasks.train import TrainTask

from cmrassist_server.conf import AppConf
from cmrassist_server.datastore import CheckedDatastore, check_id
from cmrassist_server.routes import install_train_checks
from lib.configs.segmentation import SegmentationConfig

logger = logging.getLogger(__name__)

# Paths the infer endpoint itself writes for uploaded files (tempfile.NamedTemporaryFile in the temp dir).
_UPLOAD_TMP = re.compile(r"^tmp[A-Za-z0-9_]+(\.nii(\.gz)?|\.nrrd)$")


class CMRAssistApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]):
        self.app_conf = AppConf.parse(conf, app_dir)
        self.models = {SegmentationConfig.name: SegmentationConfig(self.app_conf)}
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="CMRAssist",
                         description="Short-axis cine MRI: LV cavity, LV myocardium and RV cavity", version="0.1.0")
        if "monailabel.app" in sys.modules:  # serving (not a train/scoring child process)
            install_train_checks(sys.modules["monailabel.app"].app, self._trainers)

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        return CheckedDatastore(self.studies, extensions=("*.nii.gz", "*.nii", "*.nrrd"), auto_reload=False)

    def init_infers(self) -> Dict[str, InferTask]:
        return {name: cfg.infer() for name, cfg in self.models.items()}

    def init_trainers(self) -> Dict[str, TrainTask]:
        return {name: cfg.trainer() for name, cfg in self.models.items()}

    def infer(self, request, datastore=None):
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {sorted(self._infers)}")
        image = request.get("image")
        if isinstance(image, str):
            uploaded = os.path.dirname(image) == tempfile.gettempdir() and _UPLOAD_TMP.match(os.path.basename(image))
            if not uploaded:
                check_id(image)
                (datastore or self.datastore()).get_image_uri(image)  # 404 for unknown ids
        return super().infer(request, datastore)

    def train(self, request):
        model = request.get("model")
        if model not in self._trainers:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {sorted(self._trainers)}")
        return super().train(request)

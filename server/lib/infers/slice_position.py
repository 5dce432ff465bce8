"""Infer task ``slice_position``: per slice of a frame, too basal / in the LV / too apical (JSON only)."""

import logging
from typing import Dict

from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from cmrassist_server.imageio import InvalidInputError, check_study_image, read_image
from cmrassist_server.network import read_record
from cmrassist_server.position import POSITIONS, PositionClassifier

logger = logging.getLogger(__name__)


class PositionInferTask(InferTask):
    """``POST /infer/slice_position?image=ID&output=json``; a 4D cine takes param ``frame`` (1-based, default 1).

    Args:
        classifier: the served slice-position model.
    """

    def __init__(self, classifier: PositionClassifier):
        super().__init__(type=InferType.CLASSIFICATION, labels={name: i for i, name in enumerate(POSITIONS)},
                         dimension=3, description="Slice position: too basal, in the LV or too apical, with a "
                         "continuous position (0 at the base, 1 at the apex)", config={"frame": 1})
        self.classifier = classifier

    def info(self) -> Dict:
        trained = self.classifier.model() is not None
        return {**super().info(), "trained": trained,
                "model_record": read_record(self.classifier.checkpoint) if trained else None}

    def is_valid(self) -> bool:
        return True

    def __call__(self, request):
        try:
            image = read_image(request["image"])
            check_study_image(image)
            frames = 1 if image.GetDimension() == 3 else image.GetSize()[3]
            try:
                frame = 1 if request.get("frame") is None else int(request["frame"])
            except (TypeError, ValueError):
                raise InvalidInputError(f"frame must be an integer, got {request.get('frame')!r}", status=422) from None
            if not 1 <= frame <= frames:
                raise InvalidInputError(f"frame {frame} is outside 1..{frames}", status=422)
            result = self.classifier.classify(image, frame - 1)
        except InvalidInputError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None
        except LookupError:
            raise HTTPException(status_code=409, detail="No slice-position model has been trained yet: rank slices, "
                                "set the cut points, then POST /train/slice_position.") from None
        return None, {**result, "frame": frame, "frames": frames}

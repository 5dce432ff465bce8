"""Infer task ``slice_position``: per slice of a frame, too basal / in the LV / too apical (JSON only)."""

from typing import Dict

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from cmrassist_server.api.infer_params import PositionParams
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import check_study_image, read_image
from cmrassist_server.slice_position.network import POSITIONS, PositionClassifier


class PositionInferTask(InferTask):
    """``POST /infer/slice_position?image=ID&output=json``; a 4D cine takes param ``frame`` (1-based, default 1).

    Args:
        classifier: the served slice-position model.
    """

    #: The params this task reads, checked before it runs (``api/infer_params.py``).
    PARAMS = PositionParams

    def __init__(self, classifier: PositionClassifier):
        super().__init__(
            type=InferType.CLASSIFICATION,
            labels={name: i for i, name in enumerate(POSITIONS)},
            dimension=3,
            description="Slice position: too basal, in the LV or too apical, with a "
            "continuous position (0 at the base, 1 at the apex)",
            config={"frame": 1},
        )
        self.classifier = classifier

    def info(self) -> Dict:
        return {**super().info(), **self.classifier.served.describe()}

    def is_valid(self) -> bool:
        return True

    def __call__(self, request):
        image = read_image(request["image"])
        check_study_image(image)
        frames = 1 if image.GetDimension() == 3 else image.GetSize()[3]
        try:
            frame = 1 if request.get("frame") is None else int(request["frame"])
        except (TypeError, ValueError):
            raise CMRAssistError(f"frame must be an integer, got {request.get('frame')!r}", 422) from None
        if not 1 <= frame <= frames:
            raise CMRAssistError(f"frame {frame} is outside 1..{frames}", 422)
        return None, {**self.classifier.classify(image, frame - 1), "frame": frame, "frames": frames}

"""ED and ES of a cine from the served segmentation model: the frames with the largest and smallest LV cavity."""

from typing import List, Optional, Tuple

import SimpleITK as sitk

from cmrassist_server.core.checkpoints import ServedModel
from cmrassist_server.io.dicom.importer import PhaseFinder, lv_volume_phases
from cmrassist_server.segmentation.predictor import SegmentationPredictor


def model_phases(served: ServedModel[SegmentationPredictor]) -> PhaseFinder:
    """A phase finder that segments the cine with the served model (``None`` while no model exists)."""

    def find(cine: sitk.Image) -> Optional[Tuple[int, int, List[float]]]:
        predictor = served.get()
        if predictor is None:
            return None
        return lv_volume_phases(predictor.segment(cine), tuple(cine.GetSpacing()[:3]))

    return find

"""LV cavity / LV myocardium / RV cavity segmentation: the network, its training recipe, the predictor,
evaluation against references, and the CAM prior input.
"""

from cmrassist_server.segmentation.cam_prior import CamPrior
from cmrassist_server.segmentation.network import (
    NetworkSpec,
    SegmentationModel,
    load_segmentation,
    publish_segmentation,
)
from cmrassist_server.segmentation.predictor import SegmentationPredictor, served_segmentation
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation

__all__ = [
    "CamPrior",
    "NetworkSpec",
    "SegmentationModel",
    "SegmentationPredictor",
    "SegmentationTrainOptions",
    "load_segmentation",
    "publish_segmentation",
    "served_segmentation",
    "train_segmentation",
]

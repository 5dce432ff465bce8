"""The cardiac image itself: reading and checking files, orientation, the preprocessing every network shares
(and its exact inverse), and label post-processing.
"""

from cmrassist_server.imaging.imageio import (
    Orientation,
    check_label,
    check_study_image,
    frames_of,
    read_image,
    write_label_like,
)
from cmrassist_server.imaging.postprocess import clean_label
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig

__all__ = [
    "CardiacPreprocessor",
    "Orientation",
    "PreprocessConfig",
    "check_label",
    "check_study_image",
    "clean_label",
    "frames_of",
    "read_image",
    "write_label_like",
]

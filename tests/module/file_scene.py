"""A viewer for the panel tests that keeps studies and segmentations as files and arrays.

It implements the same :class:`SceneAdapter` interface as the Slicer layer (which has its own tests on a real
MRML scene in ``Testing/Python``); ``correct`` plays the annotator editing the segmentation before submission.
"""

import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from CMRAssistLib.annotation import LabelFile, Study
from CMRAssistLib.frames import split_frames
from CMRAssistLib.scene import SceneAdapter, Steps


class FileScene(SceneAdapter):
    def __init__(self, volumes: Optional[Dict[str, str]] = None):
        self.volumes = dict(volumes or {})  # name -> file, "already in the scene"
        self.study: Optional[Study] = None
        self.frame: Optional[int] = None
        self.label: Optional[sitk.Image] = None
        self.history: List[str] = []
        self.shown_slice: Optional[Tuple[str, Tuple[float, ...]]] = None
        self.comparisons: Dict[str, np.ndarray] = {}  # name -> label array shown beside the editable one
        self.closed_listeners: List[Callable[[], None]] = []

    def show_study(self, study: Study) -> Steps:
        self.study, self.frame, self.label = study, None, None
        self.comparisons = {}
        for number, _ in enumerate(study.frame_files, start=1):
            yield number / len(study.frame_files), f"frame {number}"
        self.history.append(f"study {study.image_id}")

    def show_frame(self, study: Study, frame: Optional[int]) -> None:
        self.frame = frame
        self.history.append(f"frame {frame}")

    def show_segmentation(self, study: Study, label: LabelFile) -> Steps:
        self.label = sitk.ReadImage(label.path)
        self.history.append(f"segmentation {study.image_id}")
        yield 1.0, "shown"

    def compare_segmentation(self, study: Study, name: str, label: LabelFile) -> Steps:
        self.comparisons[name] = sitk.GetArrayFromImage(sitk.ReadImage(label.path))
        self.history.append(f"compare {name}")
        yield 1.0, "shown"

    def show_slice(self, study: Study, center_lps) -> None:
        self.history.append(f"slice at {[round(float(v), 1) for v in center_lps]}")
        self.shown_slice = (study.image_id, tuple(float(v) for v in center_lps))

    def correct(self, edit: Callable[[np.ndarray], None]) -> np.ndarray:
        """Edit the shown segmentation in place (as the Segment Editor would) and return the new array."""
        array = sitk.GetArrayFromImage(self.label)
        edit(array)
        corrected = sitk.GetImageFromArray(array)
        corrected.CopyInformation(self.label)
        self.label = corrected
        return array

    def export_label(self, study: Study, folder: str) -> Steps:
        os.makedirs(folder, exist_ok=True)
        whole = os.path.join(folder, "label.nii.gz")
        sitk.WriteImage(self.label, whole)
        yield 1.0, "read"
        return split_frames(whole, os.path.join(folder, "frames"))

    def volume_choices(self) -> List[Tuple[str, str]]:
        return [(name, name) for name in sorted(self.volumes)]

    def server_image_id(self, key: str) -> Optional[str]:
        return None  # the volumes of this viewer are the user's own files

    def save_volume(self, key: str, out_path: str) -> str:
        image = sitk.ReadImage(self.volumes[key])
        sitk.WriteImage(image, out_path, useCompression=False)
        return out_path

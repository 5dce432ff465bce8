"""A viewer for the panel tests: keeps studies and segmentations as files and arrays (Slicer cannot run here).

It implements the same :class:`SceneAdapter` interface as the Slicer layer; ``correct`` plays the annotator
editing the segmentation before submission.
"""

import shutil
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from CMRAssistLib.annotation import Study
from CMRAssistLib.scene import SceneAdapter


class FileScene(SceneAdapter):
    def __init__(self, volumes: Optional[Dict[str, str]] = None):
        self.volumes = dict(volumes or {})  # name -> file, "already in the scene"
        self.study: Optional[Study] = None
        self.frame: Optional[int] = None
        self.label: Optional[sitk.Image] = None
        self.shown_label_path: Optional[str] = None
        self.history: List[str] = []
        self.shown_slice: Optional[Tuple[str, Tuple[float, ...]]] = None
        self.comparisons: Dict[str, np.ndarray] = {}  # name -> label array shown beside the editable one

    def show_study(self, study: Study) -> None:
        self.study, self.frame, self.label = study, None, None
        self.comparisons = {}
        self.history.append(f"study {study.image_id}")

    def show_frame(self, study: Study, frame: Optional[int]) -> None:
        self.frame = frame
        self.history.append(f"frame {frame}")

    def show_segmentation(self, study: Study, label_path: str) -> None:
        self.label = sitk.ReadImage(label_path)
        self.shown_label_path = label_path
        self.history.append(f"segmentation {study.image_id}")

    def compare_segmentation(self, study: Study, name: str, label_path: str) -> None:
        self.comparisons[name] = sitk.GetArrayFromImage(sitk.ReadImage(label_path))
        self.history.append(f"compare {name}")

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

    def export_label(self, study: Study, out_path: str) -> str:
        sitk.WriteImage(self.label, out_path, useCompression=True)
        return out_path

    def volume_choices(self) -> List[Tuple[str, str]]:
        return [(name, name) for name in sorted(self.volumes)]

    def save_volume(self, key: str, out_path: str) -> str:
        shutil.copy(self.volumes[key], out_path)
        return out_path

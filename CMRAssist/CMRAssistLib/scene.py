"""What the panels need from the viewer, as one small interface.

In Slicer it is :class:`CMRAssistLib.slicer_scene.SlicerScene` (volumes, sequences, segmentation nodes, the
Segment Editor); outside Slicer the tests use a file-backed implementation. Methods run on the GUI thread and
must be quick: downloads and uploads happen in the session, off the GUI thread.
"""

from typing import List, Optional, Sequence, Tuple

from .annotation import Study


class SceneAdapter:
    """Base class: every method must be implemented by a viewer."""

    def show_study(self, study: Study) -> None:
        """Load the study's image (a volume, or a sequence for a cine) and show it."""
        raise NotImplementedError

    def show_frame(self, study: Study, frame: Optional[int]) -> None:
        """Show frame ``frame`` (1-based) of a cine; ``None``: the whole cine (playback)."""
        raise NotImplementedError

    def show_segmentation(self, study: Study, label_path: str) -> None:
        """Show a label map (0 bg, 1 RV, 2 MYO, 3 LV) as LV cavity, LV myocardium and RV cavity segments."""
        raise NotImplementedError

    def compare_segmentation(self, study: Study, name: str, label_path: str) -> None:
        """Show a label map as an extra, read-only segmentation called ``name`` (outlines) beside the editable one,
        so a reviewer sees several annotators' versions together; the same ``name`` again replaces it."""
        raise NotImplementedError

    def show_slice(self, study: Study, center_lps: Sequence[float]) -> None:
        """Move the slice views to a slice of the study, given its centre in physical LPS millimetres."""
        raise NotImplementedError

    def export_label(self, study: Study, out_path: str) -> str:
        """Write the (possibly corrected) segmentation as a label map on the study's grid; returns the path."""
        raise NotImplementedError

    def volume_choices(self) -> List[Tuple[str, str]]:
        """``(name, key)`` of the volumes already in the scene, for upload."""
        raise NotImplementedError

    def save_volume(self, key: str, out_path: str) -> str:
        """Write a scene volume to a file (for upload); returns the path."""
        raise NotImplementedError

"""What the panels need from the viewer, as one small interface.

In Slicer it is :class:`CMRAssistLib.slicer_scene.SlicerScene` (volumes, sequences, segmentation nodes); the
panel tests also use a file-backed implementation. Methods run on the GUI thread. Those that may take longer
than a GUI thread may be held (a cine has tens of frames) return *steps*: a generator that does one short piece
of work per ``next()`` and yields ``(fraction, text)``; the background runner drives it from a timer, and its
return value is the method's result. Downloads, uploads and decompression happen in the worker process.
"""

from typing import Callable, Generator, List, Optional, Sequence, Tuple

from .annotation import LabelFile, Study

#: A generator of ``(fraction done, text)`` whose return value is the result.
Steps = Generator[Tuple[float, str], None, object]


class SceneAdapter:
    """Base class: every method must be implemented by a viewer.

    Attributes:
        closed_listeners: called with no argument when the viewer's scene is closed (File > Close Scene): every
            node of the shown study is gone; a viewer sets it to a list of its own in ``__init__``.
    """

    closed_listeners: List[Callable[[], None]]

    def close(self) -> None:
        """Stop observing the viewer (module cleanup); nothing to do by default."""

    def show_study(self, study: Study) -> Steps:
        """Load the study's frames (a volume, or a volume sequence for a cine) and show them."""
        raise NotImplementedError

    def show_frame(self, study: Study, frame: Optional[int]) -> None:
        """Show frame ``frame`` (1-based) of a cine; ``None``: the whole cine (playback)."""
        raise NotImplementedError

    def show_segmentation(self, study: Study, label: LabelFile) -> Steps:
        """Show a label map (0 bg, 1 RV, 2 MYO, 3 LV) as RV cavity, LV myocardium and LV cavity segments."""
        raise NotImplementedError

    def compare_segmentation(self, study: Study, name: str, label: LabelFile) -> Steps:
        """Show a label map as an extra, read-only segmentation called ``name`` (outlines) beside the editable one,
        so a reviewer sees several annotators' versions together; the same ``name`` again replaces it."""
        raise NotImplementedError

    def show_slice(self, study: Study, center_lps: Sequence[float]) -> None:
        """Move the slice views to a slice of the study, given its centre in physical LPS millimetres."""
        raise NotImplementedError

    def export_label(self, study: Study, folder: str) -> Steps:
        """Write the (possibly corrected) segmentation as one label file per frame into ``folder``; the steps
        return the files in frame order (the worker joins them on the study's exact grid)."""
        raise NotImplementedError

    def volume_choices(self) -> List[Tuple[str, str]]:
        """``(name, key)`` of the volumes already in the scene, for upload."""
        raise NotImplementedError

    def server_image_id(self, key: str) -> Optional[str]:
        """The server image a scene volume was loaded from (``show_study``), ``None`` for the user's own volumes."""
        raise NotImplementedError

    def save_volume(self, key: str, out_path: str) -> str:
        """Write a scene volume to an uncompressed file (for upload); returns the path."""
        raise NotImplementedError

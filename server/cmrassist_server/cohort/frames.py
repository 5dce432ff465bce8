"""Which frames of a subject are analysed: every frame of its cine (or ED and ES only), else its 3D frames.

Frame numbers count from 1, as in ACDC's ``Info.cfg`` and the image infos the importer writes.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.cohort.studies import StudyImage, Subject
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import check_study_image, frames_of, read_image

FRAME_MODES = ("all", "ed-es")


@dataclass
class Frame:
    """One 3D frame to segment: where it comes from and its pixels.

    Args:
        number: frame number in its cine (1-based); for a 3D study its ``frame`` info, else its place in the list.
        image: the study image it belongs to (the cine, or the 3D study itself).
        array: ``(z, y, x)`` float32 pixels.
        reference: a 3D image with the frame's geometry (for QC and for writing its label).
        in_cine: whether it is a frame of a 4D cine (else a 3D study of its own).
    """

    number: int
    image: StudyImage
    array: np.ndarray
    reference: sitk.Image
    in_cine: bool = False

    @property
    def label_name(self) -> str:
        """File name of its label: ``<cine>_frameNN`` for a cine frame, the study's id for a 3D study."""
        return f"{self.image.image_id}_frame{self.number:02d}" if self.in_cine else self.image.image_id


@dataclass
class SubjectFrames:
    """The frames of one subject to analyse, and what is known of ED and ES (indices into ``frames``)."""

    frames: List[Frame]
    whole_cine: bool
    ed_index: Optional[int]
    es_index: Optional[int]
    info: Dict = field(default_factory=dict)
    unused_images: List[str] = field(default_factory=list)
    total_frames: int = 0


def _frame_number(value) -> Optional[int]:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 1 else None


def frame_reference(cine: sitk.Image, t: int) -> sitk.Image:
    """Frame ``t`` (0-based) of a 4D cine as a 3D image with the cine's spatial geometry."""
    size = list(cine.GetSize())
    return sitk.Extract(cine, size[:3] + [0], [0, 0, 0, t])


def _cine_frames(cine: StudyImage, image: sitk.Image, mode: str) -> SubjectFrames:
    pixels = frames_of(image)
    n = len(pixels)
    ed, es = _frame_number(cine.info.get("ed_frame")), _frame_number(cine.info.get("es_frame"))
    known = ed is not None and es is not None and ed <= n and es <= n and ed != es
    if mode == "ed-es" and known:
        numbers = sorted({ed, es})
    else:
        numbers = list(range(1, n + 1))
    frames = [Frame(t, cine, pixels[t - 1], frame_reference(image, t - 1), in_cine=True) for t in numbers]
    return SubjectFrames(
        frames=frames,
        whole_cine=len(numbers) == n and n >= 3,
        ed_index=numbers.index(ed) if known else None,
        es_index=numbers.index(es) if known else None,
        info=dict(cine.info),
        total_frames=n,
    )


def _phase_index(images: List[StudyImage], phase: str, frame: Optional[int]) -> Optional[int]:
    for i, image in enumerate(images):
        if str(image.info.get("phase", "")).upper() == phase:
            return i
    for i, image in enumerate(images):
        if frame is not None and _frame_number(image.info.get("frame")) == frame:
            return i
    return None


def _study_frames(studies: List[Tuple[StudyImage, sitk.Image]]) -> SubjectFrames:
    studies = sorted(studies, key=lambda s: (_frame_number(s[0].info.get("frame")) or 0, s[0].image_id))
    images = [s[0] for s in studies]
    info = dict(images[0].info)
    ed_frame, es_frame = _frame_number(info.get("ed_frame")), _frame_number(info.get("es_frame"))
    frames = [
        Frame(_frame_number(im.info.get("frame")) or i + 1, im, frames_of(img)[0], img)
        for i, (im, img) in enumerate(studies)
    ]
    ed, es = _phase_index(images, "ED", ed_frame), _phase_index(images, "ES", es_frame)
    return SubjectFrames(frames, False, ed, es if es != ed else None, info, total_frames=len(frames))


def subject_frames(subject: Subject, mode: str = "all") -> SubjectFrames:
    """Read a subject's images and choose its frames: its cine (all frames, or ED and ES when ``mode`` is
    ``ed-es`` and the image info names them), else its 3D studies. Other images of the subject (the ED/ES
    studies beside a cine are copies of its frames) are listed in ``unused_images``.

    Raises:
        CMRAssistError: an unreadable image, or one that is not a short-axis stack or cine.
    """
    if mode not in FRAME_MODES:
        raise CMRAssistError(f"frames must be one of {', '.join(FRAME_MODES)}, not {mode!r}", 422)
    loaded = []
    for image in subject.images:
        try:
            img = read_image(image.path)
            check_study_image(img)
        except CMRAssistError as e:
            raise CMRAssistError(f"{image.image_id}: {e}", e.status) from None
        loaded.append((image, img))
    cines = [(im, img) for im, img in loaded if img.GetDimension() == 4]
    if cines:
        chosen = _cine_frames(cines[0][0], cines[0][1], mode)
        chosen.unused_images = [im.image_id for im, _ in loaded if im.image_id != cines[0][0].image_id]
        return chosen
    return _study_frames(loaded)

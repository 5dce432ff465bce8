"""Training examples for the slice-position classifier: ranking-derived positions joined with the frames' pixels."""

import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.slice_position.network import POSITIONS, PositionSpec, frame_stack, stack_inputs
from cmrassist_server.slice_position.ranking_store import RankingStore
from cmrassist_server.slice_position.training import LabelledStack

#: ``{(image_id, frame): {slice: (position name, continuous position)}}``; ``frame`` as the ranking store holds it
#: (1-based frame of a 4D cine; for a 3D study its cine frame number, or 1).
SlicePositions = Dict[Tuple[str, int], Dict[int, Tuple[str, float]]]


def ranking_positions(store: RankingStore) -> SlicePositions:
    """Positions derived from the reviewer's cut points, and each slice's continuous position.

    The continuous position is 0 at the basal cut, 1 at the apical cut (ratings fall from base to apex).

    Raises:
        CMRAssistError: no cut points yet (409).
    """
    cuts = store.cut_points()
    if cuts is None:
        raise CMRAssistError("no cut points set yet: a reviewer sets them on the ordered list first", 409)
    span = cuts["basal_end"] - cuts["apical_start"]
    out: SlicePositions = {}
    for item, position in store.derived_labels():
        if item.views == 0:
            continue  # never ranked: its rating says nothing
        out.setdefault((item.image_id, item.frame), {})[item.slice] = (
            position,
            (cuts["basal_end"] - item.rating) / span,
        )
    return out


def label_positions(items: List[Dict]) -> Tuple[SlicePositions, Dict[str, str], Dict[str, str]]:
    """True slice positions of labelled frames, from their labels (:func:`positions_from_label`).

    Args:
        items: ``{"image", "label", "subject"}`` per 3D frame.

    Returns:
        ``(positions, image path by id, subject by id)``, ids being the image file names without extension.
    """
    positions: SlicePositions = {}
    paths, subjects = {}, {}
    for it in items:
        label = sitk.ReadImage(it["label"])
        canonical = Orientation.of(label).to_canonical(sitk.GetArrayFromImage(label))
        image_id = os.path.basename(it["image"]).split(".")[0]
        positions[(image_id, 1)] = dict(enumerate(positions_from_label(canonical)))
        paths[image_id], subjects[image_id] = it["image"], it.get("subject") or image_id
    return positions, paths, subjects


def labelled_stacks(
    positions: SlicePositions,
    image_path: Callable[[str], str],
    subject_of: Callable[[str], str],
    *,
    spec: Optional[PositionSpec] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> List[LabelledStack]:
    """Read each image with known positions once and pair its frames' slice inputs with their positions.

    Args:
        positions: known positions per frame and slice (a 3D image is its own frame, whatever its number).
        image_path: image id -> file path.
        subject_of: image id -> patient (for subject-wise splits).
        spec: network input settings.
        progress: ``progress(done, total)`` after each frame.
    """
    spec = spec or PositionSpec()
    stacks = []
    images = sorted({image_id for image_id, _ in positions})
    for n, image_id in enumerate(images, start=1):
        image = sitk.ReadImage(image_path(image_id))
        frames = image.GetSize()[3] if image.GetDimension() == 4 else 1
        for (_, frame), known in sorted((key, v) for key, v in positions.items() if key[0] == image_id):
            index = frame - 1 if frames > 1 else 0
            if not 0 <= index < frames:
                continue  # a frame the image no longer has
            x, place = stack_inputs(frame_stack(image, spec, index), spec)
            labels = np.full(len(x), -1, np.int64)
            continuous = np.full(len(x), np.nan, np.float32)
            for k, (name, t) in known.items():
                if 0 <= k < len(x):
                    labels[k], continuous[k] = POSITIONS.index(name), t
            stacks.append(LabelledStack(image_id, subject_of(image_id), x, place, labels, continuous, frame=frame))
        if progress:
            progress(n, len(images))
    return stacks


def positions_from_label(label: np.ndarray, *, lv_cavity: int = 3, lv_myocardium: int = 2) -> List[Tuple[str, float]]:
    """The true position of every slice of a canonical ``(slices, H, W)`` label, by the published definitions.

    In the LV: myocardium around at least 50% of the blood pool's outline, or myocardium without a blood pool
    (the apical cap). Too basal: the basal side of those slices (a blood pool less than half enclosed, or no
    LV at all). Too apical: beyond the apex, no LV myocardium. The base is the end with the larger blood pool.
    The continuous position of the j-th of n in-LV slices from the base is (j + 0.5) / n; slices outside go on
    in steps of 1 / n (negative above the base, above 1 beyond the apex).
    """
    from scipy import ndimage

    n = label.shape[0]
    enclosed = np.zeros(n, bool)
    area = np.zeros(n)
    for k in range(n):
        cavity, myo = label[k] == lv_cavity, label[k] == lv_myocardium
        area[k] = cavity.sum()
        if cavity.any():
            outline = cavity & ~ndimage.binary_erosion(cavity)
            near_myo = ndimage.binary_dilation(myo, structure=np.ones((3, 3), bool))
            enclosed[k] = (outline & near_myo).sum() >= 0.5 * outline.sum()
        else:
            enclosed[k] = myo.any()
    inside = np.flatnonzero(enclosed)
    if len(inside) == 0:
        return [("too_basal", float("nan"))] * n
    first, last = int(inside[0]), int(inside[-1])
    middle = (first + last) / 2
    base_first = area[: int(np.floor(middle)) + 1].sum() >= area[int(np.ceil(middle)) :].sum()
    count = last - first + 1
    out = []
    for k in range(n):
        j = (k - first) if base_first else (last - k)  # steps from the basal-most in-LV slice
        t = (j + 0.5) / count
        out.append(("too_basal" if t < 0 else "too_apical" if t > 1 else "in_lv", float(t)))
    return out

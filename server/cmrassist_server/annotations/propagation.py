"""Label propagation across cine frames by deformable registration (SimpleITK), slice by slice.

Short-axis cines have thick slices (5-10 mm) and through-plane motion that registration cannot recover, so each
slice is registered in-plane to the same slice of the target frame: a symmetric-forces demons registration at
three resolutions on a window around the labelled heart (the frames come from one acquisition, so their
intensities match without histogram matching). The label is then warped with nearest-neighbour interpolation.

What in-plane registration cannot see is checked by the segmentation model where one is at hand: at ES the base
moves towards the apex, so a basal slice labelled at ED shows atrium at ES; a class the model finds on less than
``through_plane_keep`` of its propagated area on a target slice has left that slice and is dropped there, where
the model agrees with the propagated class on the frame as a whole (``bench/propagation.py --cv-state``).
"""

import logging
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import Orientation, frames_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PropagationOptions:
    """Registration settings (tuned on ACDC ED -> ES pairs; see ``bench/propagation.py``).

    Args:
        iterations: demons iterations at each level, coarse to fine.
        shrink: downsampling factor of each level.
        smoothing: standard deviation (pixels) of the displacement field's Gaussian regularisation.
        margin_mm: window around the labelled heart that is registered (the rest is left where it is).
        match_histograms: match the frames' intensity histograms before registering.
        through_plane_keep: with the target frame's model labels, a class the model finds on less than this
            fraction of its propagated area on a slice is dropped from that slice (:func:`through_plane_check`).
        through_plane_trust: the frame-wide Dice with the propagated class a model needs to be trusted with it.
    """

    iterations: Sequence[int] = (80, 60, 40)
    shrink: Sequence[int] = (4, 2, 1)
    smoothing: float = 1.0
    margin_mm: float = 25.0
    match_histograms: bool = False
    through_plane_keep: float = 0.5
    through_plane_trust: float = 0.5


def _as_image(array: np.ndarray, spacing) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((float(spacing[1]), float(spacing[0])))
    return image


def register_slice(fixed: np.ndarray, moving: np.ndarray, spacing, options: PropagationOptions) -> sitk.Transform:
    """Displacement-field transform mapping ``fixed`` (target frame) points onto ``moving`` (labelled frame).

    Args:
        fixed: target frame's slice ``(rows, cols)``.
        moving: labelled frame's slice, same grid.
        spacing: ``(row_mm, col_mm)``.
        options: registration settings.
    """
    lo, hi = np.percentile(np.concatenate([fixed.ravel(), moving.ravel()]), (1, 99))
    scale = max(hi - lo, 1e-6)
    fixed_img = _as_image(np.clip((fixed - lo) / scale, 0, 1), spacing)
    moving_img = _as_image(np.clip((moving - lo) / scale, 0, 1), spacing)
    if options.match_histograms:
        moving_img = sitk.HistogramMatching(moving_img, fixed_img, 64, 7, True)
    field = None
    for iterations, shrink in zip(options.iterations, options.shrink):
        f = sitk.Shrink(fixed_img, [shrink, shrink]) if shrink > 1 else fixed_img
        m = sitk.Shrink(moving_img, [shrink, shrink]) if shrink > 1 else moving_img
        demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
        demons.SetNumberOfIterations(int(iterations))
        demons.SetStandardDeviations(options.smoothing)
        demons.SetSmoothDisplacementField(True)
        if field is None:
            field = demons.Execute(f, m)
        else:
            initial = sitk.Resample(field, f, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
            field = demons.Execute(f, m, initial)
    if field.GetSize() != fixed_img.GetSize():
        field = sitk.Resample(field, fixed_img, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
    return sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))


def through_plane_check(warped: np.ndarray, model_labels: np.ndarray, keep: float, trust: float = 0.5) -> np.ndarray:
    """``warped`` without each class on each slice where ``model_labels`` has less than ``keep`` of its area: the
    structure moved out of that slice (through-plane motion), which slice-wise registration cannot know.

    A model is trusted with a class only where it agrees with the propagated label on the frame as a whole (Dice at
    least ``trust``): a model that does not know these images yet (a site's first rounds, a phantom) would
    otherwise remove what registration got right.

    Args:
        warped: propagated ``(slices, rows, cols)`` labels.
        model_labels: the segmentation model's labels of the same frame, same grid.
        keep: the fraction of the propagated area the model must find for the class to stay on the slice.
        trust: the frame-wide Dice between the model's and the propagated class below which the class is left as
            propagated.
    """
    out = warped.copy()
    for cls in (int(c) for c in np.unique(warped) if c):
        mine, model = warped == cls, model_labels == cls
        if 2 * (mine & model).sum() < trust * (mine.sum() + model.sum()):
            continue
        for k in range(warped.shape[0]):
            if model[k].sum() < keep * mine[k].sum():
                out[k][mine[k]] = 0
    return out


def through_plane_model(served, asked: bool = True) -> Tuple[Optional[object], str]:
    """The served segmentation predictor that checks a propagation through-plane (``None``: registration alone) and
    what a response says about it. A missing or damaged model leaves registration alone, never a failed propagation.

    Args:
        served: the served segmentation model (``core/checkpoints.ServedModel``), or ``None``.
        asked: the request's ``through_plane`` param.
    """
    if not asked:
        return None, "off"
    try:
        predictor = served.get() if served is not None else None
    except CMRAssistError as e:
        logger.error(f"propagation not checked through-plane: {e}")
        return None, f"off (segmentation model unusable: {e})"
    return predictor, "segmentation model" if predictor is not None else "off (no segmentation model)"


def propagate_frame(
    moving_image: np.ndarray,
    moving_label: np.ndarray,
    fixed_image: np.ndarray,
    spacing,
    options: Optional[PropagationOptions] = None,
    model_labels: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Warp ``moving_label`` (on ``moving_image``) onto ``fixed_image``; canonical ``(slices, rows, cols)`` arrays.

    Args:
        moving_image: the labelled frame.
        moving_label: its label map.
        fixed_image: the frame to label.
        spacing: ``(slice_mm, row_mm, col_mm)``.
        options: registration settings.
        model_labels: the segmentation model's labels of ``fixed_image``: with them, :func:`through_plane_check`.
    """
    options = options or PropagationOptions()
    warped = _warp(moving_image, moving_label, fixed_image, spacing, options)
    if model_labels is None:
        return warped
    return through_plane_check(warped, model_labels, options.through_plane_keep, options.through_plane_trust)


def _warp(moving_image, moving_label, fixed_image, spacing, options: PropagationOptions) -> np.ndarray:
    out = np.zeros_like(moving_label)
    fg = np.argwhere(moving_label > 0)
    if len(fg) == 0:
        return out
    margin = (int(np.ceil(options.margin_mm / spacing[1])), int(np.ceil(options.margin_mm / spacing[2])))
    r0, c0 = np.maximum(fg[:, 1:].min(0) - margin, 0)
    r1, c1 = np.minimum(fg[:, 1:].max(0) + margin + 1, moving_label.shape[1:])
    window = (slice(r0, r1), slice(c0, c1))
    for k in range(moving_label.shape[0]):
        if not moving_label[k].any():
            continue
        transform = register_slice(fixed_image[k][window], moving_image[k][window], spacing[1:], options)
        label = sitk.GetImageFromArray(moving_label[k][window].astype(np.uint8))
        label.SetSpacing((float(spacing[2]), float(spacing[1])))
        warped = sitk.Resample(label, label, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        out[k][window] = sitk.GetArrayFromImage(warped)
    return out


def propagate_cine(
    cine: sitk.Image,
    label: np.ndarray,
    source_frame: int,
    *,
    targets: Optional[List[int]] = None,
    options: Optional[PropagationOptions] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    segment: Optional[Callable[[np.ndarray], np.ndarray]] = None,
) -> np.ndarray:
    """Propagate one frame's label to the other frames of a 4D cine.

    Args:
        cine: the 4D image.
        label: the labelled frame's ``(z, y, x)`` label on the cine's grid.
        source_frame: 0-based index of the labelled frame.
        targets: 0-based frames to label (all others by default).
        options: registration settings.
        progress: ``progress(done, total)`` after each frame.
        segment: the segmentation model on one ``(z, y, x)`` frame, giving its labels on the same grid: each
            propagated frame is then checked through-plane (:func:`through_plane_check`).

    Returns:
        ``(frames, z, y, x)`` labels: the source label at ``source_frame``, warped labels at the targets, zeros
        elsewhere.
    """
    frames = frames_of(cine)
    if not 0 <= source_frame < len(frames):
        raise ValueError(f"source frame {source_frame + 1} is outside 1..{len(frames)}")
    if label.shape != frames.shape[1:]:
        raise ValueError(f"the label's shape {label.shape} is not the cine frame's {frames.shape[1:]}")
    orientation = Orientation.of(cine)
    moving_image = orientation.to_canonical(frames[source_frame])
    moving_label = orientation.to_canonical(label)
    out = np.zeros((len(frames),) + label.shape, np.uint8)
    out[source_frame] = label
    targets = [t for t in (targets if targets is not None else range(len(frames))) if t != source_frame]
    for n, t in enumerate(targets, start=1):
        model_labels = orientation.to_canonical(segment(frames[t])) if segment else None
        fixed = orientation.to_canonical(frames[t])
        warped = propagate_frame(moving_image, moving_label, fixed, orientation.spacing, options, model_labels)
        out[t] = orientation.from_canonical(warped)
        if progress:
            progress(n, len(targets))
    return out

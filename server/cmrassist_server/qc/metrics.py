"""Slice-level quality figures and what QC derives from them: 3D Dice rebuilt from slices, flags, corrected volumes.

Arrays are ``(slices, rows, columns)`` label maps; class ``c`` is label value ``c`` (0 background, 1 RV cavity,
2 LV myocardium, 3 LV cavity). ``y`` is the reference and ``z`` the segmentation under check, as in the
published method: ``MVSF = 2(|y|-|z|)/(|y|+|z|)``.
"""

from typing import Dict, Sequence, Tuple

import numpy as np

from CMRAssistCore.measures import dice, mask_dice

NUM_CLASSES = 4
#: Class names in label-value order, as used in QC reports.
QC_CLASSES: Tuple[str, ...] = ("background", "rv_cavity", "lv_myocardium", "lv_cavity")
#: Classes that are flagged and corrected (background is predicted but never flagged).
CHECKED_CLASSES: Tuple[int, ...] = (1, 2, 3)
DEFAULT_THRESHOLD = 0.7
# MVSF of +2 means the checked slice is empty; clipping below it keeps the |y| rebuild finite.
_MVSF_LIMIT = 1.99


def slice_counts(label: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Pixels of each class on each slice: ``(slices, classes)``."""
    flat = label.reshape(label.shape[0], -1).astype(np.int64)
    return np.stack([(flat == c).sum(1) for c in range(num_classes)], axis=1).astype(np.float64)


def slice_dice_mvsf(
    reference: np.ndarray, segmentation: np.ndarray, num_classes: int = NUM_CLASSES
) -> Tuple[np.ndarray, np.ndarray]:
    """True slice Dice and MVSF per class, ``(slices, classes)`` each.

    A class absent from both slices has Dice 1 and MVSF 0 (nothing to get wrong).
    """
    if reference.shape != segmentation.shape:
        raise ValueError(f"reference shape {reference.shape} differs from segmentation shape {segmentation.shape}")
    ref = reference.reshape(reference.shape[0], -1)
    seg = segmentation.reshape(segmentation.shape[0], -1)
    dice = np.ones((ref.shape[0], num_classes))
    mvsf = np.zeros((ref.shape[0], num_classes))
    for c in range(num_classes):
        y, z = ref == c, seg == c
        ny, nz = y.sum(1).astype(float), z.sum(1).astype(float)
        total = ny + nz
        some = total > 0
        dice[:, c] = mask_dice(y, z, axis=1)
        mvsf[some, c] = 2 * (ny[some] - nz[some]) / total[some]
    return dice, mvsf


def dice_3d(reference: np.ndarray, segmentation: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """True 3D Dice per class; 1 for a class absent from both."""
    return np.array([dice(segmentation, reference, c) for c in range(num_classes)])


def rebuild_dice_3d(seg_counts: np.ndarray, slice_dice: np.ndarray, slice_mvsf: np.ndarray) -> np.ndarray:
    """3D Dice per class rebuilt from slice Dice and MVSF (predicted or true) and the checked slice areas.

    ``|y_i| = |z_i| (2 + MVSF_i) / (2 - MVSF_i)``, ``|y_i & z_i| = Dice_i (|y_i| + |z_i|) / 2``,
    ``Dice_3D = 2 sum|y_i & z_i| / (sum|y_i| + sum|z_i|)``. A slice where the checked segmentation has none of a
    class cannot give ``|y_i|`` from the formula; when the slice's figures say the reference has the class there
    (MVSF >= 1 or Dice < 0.5: with nothing segmented, Dice is 1 only if the reference is empty too), ``|y_i|``
    is taken as the mean checked area of the nearest slices above and below that have it (a missing slice
    inside the stack looks like its neighbours), else 0.

    Args:
        seg_counts: ``(slices, classes)`` pixel counts of the checked segmentation.
        slice_dice: ``(slices, classes)`` slice Dice.
        slice_mvsf: ``(slices, classes)`` slice MVSF.
    """
    z = np.asarray(seg_counts, dtype=float)
    m = np.clip(np.asarray(slice_mvsf, dtype=float), -2.0, _MVSF_LIMIT)  # only MVSF near +2 blows |y| up
    y = z * (2 + m) / (2 - m)
    # On a slice without the class, a low slice Dice or a high MVSF both say that the reference has it there.
    missed = (z == 0) & ((m >= 1.0) | (np.asarray(slice_dice, dtype=float) < 0.5))
    for i, c in zip(*np.nonzero(missed)):
        column = z[:, c]
        below = [column[j] for j in range(i - 1, -1, -1) if column[j] > 0][:1]
        above = [column[j] for j in range(i + 1, len(column)) if column[j] > 0][:1]
        y[i, c] = float(np.mean(below + above)) if below or above else 0.0
    inter = np.asarray(slice_dice, dtype=float) * (y + z) / 2
    total = y.sum(0) + z.sum(0)
    # Nothing segmented and nothing rebuilt: right (1) unless some slice says the reference has the class (0).
    empty = np.where(missed.any(0), 0.0, 1.0)
    return np.where(total > 0, 2 * inter.sum(0) / np.maximum(total, 1e-12), empty)


def flag_slices(slice_dice: np.ndarray, thresholds: Dict[int, float]) -> np.ndarray:
    """``(slices, classes)`` booleans: predicted Dice under the class's threshold (checked classes only)."""
    flags = np.zeros(slice_dice.shape, dtype=bool)
    for c, t in thresholds.items():
        flags[:, c] = slice_dice[:, c] < t
    return flags


def corrected_areas(areas: Sequence[float], flagged: Sequence[bool]) -> np.ndarray:
    """Slice areas with each flagged slice replaced by the mean of its nearest good neighbours above and below.

    Only slices strictly inside the class's extent (first to last slice with any area) are replaced: the most
    basal and most apical slices stay as they are, since they have no neighbour on one side. A flagged slice
    with a good neighbour on one side only takes that neighbour's area.
    """
    areas = np.asarray(areas, dtype=float)
    flagged = np.asarray(flagged, dtype=bool)
    out = areas.copy()
    present = np.flatnonzero(areas > 0)
    if len(present) < 3:
        return out
    first, last = present[0], present[-1]
    good = [i for i in range(first, last + 1) if not flagged[i]]
    for i in range(first + 1, last):
        if not flagged[i]:
            continue
        below = [j for j in good if j < i]
        above = [j for j in good if j > i]
        neighbours = ([areas[below[-1]]] if below else []) + ([areas[above[0]]] if above else [])
        if neighbours:
            out[i] = float(np.mean(neighbours))
    return out

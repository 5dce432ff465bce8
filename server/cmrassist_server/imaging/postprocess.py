"""Label clean-up after inference: largest connected component per class, holes filled."""

import numpy as np
from scipy import ndimage

from CMRAssistCore.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY

_CONNECTIVITY_3D = ndimage.generate_binary_structure(3, 3)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 26-connected component of a 3D mask (slices touch through-plane)."""
    labelled, n = ndimage.label(mask, structure=_CONNECTIVITY_3D)
    if n <= 1:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(sizes.argmax())


def clean_label(label: np.ndarray) -> np.ndarray:
    """Largest component per class, then in-plane holes filled.

    Background enclosed by the myocardium becomes LV cavity (it can only be the blood pool); holes inside
    the RV or LV cavity take that cavity's value.

    Args:
        label: ``(slices, rows, columns)`` integer label map.
    """
    out = np.zeros_like(label)
    rows, cols = np.nonzero(label.any(axis=0))
    if rows.size == 0:
        return out
    # Work inside the heart's bounding box plus a background margin: same result, a fraction of the pixels.
    box = (slice(None), slice(max(rows.min() - 1, 0), rows.max() + 2), slice(max(cols.min() - 1, 0), cols.max() + 2))
    out[box] = _clean(label[box])
    return out


def _clean(label: np.ndarray) -> np.ndarray:
    out = np.zeros_like(label)
    for value in (RV_CAVITY, LV_MYOCARDIUM, LV_CAVITY):
        out[largest_component(label == value)] = value
    for z in range(out.shape[0]):
        plane = out[z]
        for value, region in (
            (RV_CAVITY, plane == RV_CAVITY),
            (LV_CAVITY, (plane == LV_CAVITY) | (plane == LV_MYOCARDIUM)),
        ):
            filled = ndimage.binary_fill_holes(region)
            plane[filled & (plane == 0)] = value
    return out

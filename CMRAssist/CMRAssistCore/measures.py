"""Clinical measures and overlap metrics for short-axis label maps, in numpy (SimpleITK's distance map for HD95).

Arrays are indexed ``(slice, row, column)``; spacings are ``(slice, row, column)`` in millimetres.
"""

from typing import Dict, Optional, Sequence

import numpy as np

from .labels import CARDIAC_CLASSES, LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY, SHORT_NAMES

MYOCARDIAL_DENSITY_G_PER_ML = 1.05


def slice_areas_mm2(label: np.ndarray, spacing: Sequence[float]) -> Dict[str, np.ndarray]:
    """Per-slice area (mm^2) of each cardiac class.

    Args:
        label: integer label map ``(slices, rows, columns)``.
        spacing: voxel spacing ``(slice, row, column)`` in mm.
    """
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    return {
        name: (label == value).sum(axis=(1, 2)).astype(float) * pixel_mm2 for name, value in CARDIAC_CLASSES.items()
    }


def class_volumes_ml(label: np.ndarray, spacing: Sequence[float]) -> Dict[str, float]:
    """Volume (ml) of each cardiac class, counting voxels (slice thickness = slice spacing)."""
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    return {name: float((label == value).sum()) * voxel_ml for name, value in CARDIAC_CLASSES.items()}


def ventricular_function(
    ed_label: np.ndarray,
    es_label: np.ndarray,
    ed_spacing: Sequence[float],
    es_spacing: Optional[Sequence[float]] = None,
) -> Dict[str, float]:
    """LV and RV EDV, ESV, SV (ml), EF (%) and LV myocardial mass (g, at ED, 1.05 g/ml).

    Args:
        ed_label: end-diastolic label map.
        es_label: end-systolic label map.
        ed_spacing: ED voxel spacing in mm.
        es_spacing: ES voxel spacing in mm; the ED spacing when omitted.
    """
    ed = class_volumes_ml(ed_label, ed_spacing)
    es = class_volumes_ml(es_label, es_spacing if es_spacing is not None else ed_spacing)
    out: Dict[str, float] = {}
    for side, key in (("lv", "lv_cavity"), ("rv", "rv_cavity")):
        edv, esv = ed[key], es[key]
        out[f"{side}_edv_ml"] = edv
        out[f"{side}_esv_ml"] = esv
        out[f"{side}_sv_ml"] = edv - esv
        out[f"{side}_ef_pct"] = 100.0 * (edv - esv) / edv if edv > 0 else float("nan")
    out["lv_mass_g"] = ed["lv_myocardium"] * MYOCARDIAL_DENSITY_G_PER_ML
    return out


def mask_dice(a: np.ndarray, b: np.ndarray, axis=None, *, empty: float = 1.0, eps: float = 0.0):
    """The one Dice: ``2 |a & b| / (|a| + |b|)`` of binary or soft masks, summed over ``axis`` (all by default).

    Args:
        a, b: masks of one shape (booleans, or probabilities for a soft Dice).
        axis: the axes summed (e.g. ``1`` for per-slice Dice of ``(slices, pixels)`` masks).
        empty: the Dice where both masks are (nearly) empty: nothing to get wrong.
        eps: totals at or under this count as empty (soft masks never sum to exactly 0).

    Returns:
        A float for ``axis=None``, else an array over the axes left.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == bool:
        overlap = np.logical_and(a, b).sum(axis).astype(np.float64)
        total = a.sum(axis).astype(np.float64) + b.sum(axis)
    else:
        overlap, total = (a * b).sum(axis), a.sum(axis) + b.sum(axis)
    out = np.where(total > eps, 2.0 * overlap / np.maximum(total, max(eps, 1e-12)), empty)
    return float(out) if np.ndim(out) == 0 else out


def dice(pred: np.ndarray, ref: np.ndarray, value: int) -> float:
    """Dice of one class; 1.0 when the class is absent from both."""
    return mask_dice(pred == value, ref == value)


def _surface(mask: np.ndarray) -> np.ndarray:
    """The mask's boundary voxels (6-neighbourhood)."""
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for shift in (1, -1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~interior


def _surface_points_mm(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Physical coordinates of the mask's boundary voxels (6-neighbourhood)."""
    return np.argwhere(_surface(mask)) * np.asarray(spacing, dtype=float)


def _distances_to_surface_mm(
    points_of: np.ndarray, surface_of: np.ndarray, spacing: Sequence[float]
) -> Optional[np.ndarray]:
    """Distance (mm) from each boundary voxel of ``points_of`` to the nearest boundary voxel of ``surface_of``,
    from an exact Euclidean distance map (linear time); ``None`` without SimpleITK (bundled with Slicer)."""
    try:
        import SimpleITK as sitk
    except ImportError:
        return None
    image = sitk.GetImageFromArray(_surface(surface_of).astype(np.uint8))
    image.SetSpacing([float(s) for s in reversed(spacing)])
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return np.abs(sitk.GetArrayFromImage(distance))[_surface(points_of)]


def _directed_distances(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    out = np.empty(len(a))
    for start in range(0, len(a), chunk):
        block = a[start : start + chunk]
        d2 = ((block[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        out[start : start + chunk] = np.sqrt(d2.min(axis=1))
    return out


def hausdorff95_mm(pred: np.ndarray, ref: np.ndarray, value: int, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance (mm) of one class (max of the two directed 95th percentiles).

    Returns nan when the class is absent from either map.
    """
    p, r = pred == value, ref == value
    if not p.any() or not r.any():
        return float("nan")
    p_to_r, r_to_p = _distances_to_surface_mm(p, r, spacing), _distances_to_surface_mm(r, p, spacing)
    if p_to_r is None or r_to_p is None:  # all pairs: exact too, but quadratic (slow for large, ragged masks)
        sp, sr = _surface_points_mm(p, spacing), _surface_points_mm(r, spacing)
        p_to_r, r_to_p = _directed_distances(sp, sr), _directed_distances(sr, sp)
    return float(max(np.percentile(p_to_r, 95), np.percentile(r_to_p, 95)))


def overlap_table(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> Dict[str, Dict[str, float]]:
    """Dice and HD95 for RV, MYO and LV: ``{"LV": {"dice": .., "hd95_mm": ..}, ...}``."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    return {
        SHORT_NAMES[v]: {"dice": dice(pred, ref, v), "hd95_mm": hausdorff95_mm(pred, ref, v, spacing)}
        for v in (RV_CAVITY, LV_MYOCARDIUM, LV_CAVITY)
    }


__all__ = [
    "LV_CAVITY",
    "LV_MYOCARDIUM",
    "RV_CAVITY",
    "class_volumes_ml",
    "dice",
    "hausdorff95_mm",
    "overlap_table",
    "slice_areas_mm2",
    "ventricular_function",
]

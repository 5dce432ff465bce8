"""Realistic corruptions of a short-axis label map, to give the QC model segmentations of every quality.

Each corruption mimics a failure seen in automatic or hurried manual segmentations: boundaries too tight or
too loose, a slice shifted, slices missing or added beyond base and apex, classes swapped, part of a
structure deleted, ragged boundaries. All work on ``(slices, rows, columns)`` label maps at any spacing.
"""

from typing import Callable, Dict, List, Tuple

import numpy as np
from scipy import ndimage

RV, MYO, LV = 1, 2, 3
_CROSS = ndimage.generate_binary_structure(2, 1)


def _some_slices(label: np.ndarray, rng: np.random.Generator, p: float) -> List[int]:
    """Random slices holding any foreground (at least one when there is any)."""
    fg = [i for i in range(label.shape[0]) if label[i].any()]
    if not fg:
        return []
    chosen = [i for i in fg if rng.random() < p]
    return chosen or [int(rng.choice(fg))]


def _resize_class(label: np.ndarray, rng: np.random.Generator, *, grow: bool) -> np.ndarray:
    out = label.copy()
    c = int(rng.choice([RV, MYO, LV]))
    radius = int(rng.integers(1, 6))
    for i in _some_slices(label, rng, rng.uniform(0.3, 1.0)):
        mask = label[i] == c
        if not mask.any():
            continue
        if grow:
            out[i][ndimage.binary_dilation(mask, _CROSS, iterations=radius)] = c
        else:
            out[i][mask & ~ndimage.binary_erosion(mask, _CROSS, iterations=radius)] = MYO if c == LV else 0
    return out


def erode(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A class drawn too tight: its outer pixels go to the myocardium (LV cavity) or background."""
    return _resize_class(label, rng, grow=False)


def dilate(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A class drawn too loose: it grows over its neighbours."""
    return _resize_class(label, rng, grow=True)


def shift(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slices misplaced in-plane (as after breath-hold misregistration or a careless drag)."""
    out = label.copy()
    for i in _some_slices(label, rng, rng.uniform(0.2, 1.0)):
        dy, dx = rng.integers(-10, 11, size=2)
        out[i] = ndimage.shift(label[i], (int(dy), int(dx)), order=0, mode="constant", cval=0)
    return out


def drop_slices(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slices left out: one class, or the whole heart, missing on a few slices."""
    out = label.copy()
    classes = [RV, MYO, LV] if rng.random() < 0.5 else [int(rng.choice([RV, MYO, LV]))]
    for i in _some_slices(label, rng, rng.uniform(0.1, 0.4)):
        for c in classes:
            out[i][label[i] == c] = MYO if (c == LV and MYO not in classes) else 0
    return out


def extra_slices(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slices over-included beyond base or apex: a neighbour's segmentation copied onto an empty slice."""
    out = label.copy()
    fg = [i for i in range(label.shape[0]) if label[i].any()]
    if not fg:
        return out
    empty = [i for i in range(label.shape[0]) if not label[i].any()]
    targets = empty or [fg[0], fg[-1]]
    for target in rng.choice(targets, size=min(len(targets), int(rng.integers(1, 3))), replace=False):
        source = min(fg, key=lambda j: abs(j - int(target)))
        out[int(target)] = label[source]
    return out


def swap_classes(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Classes confused on some slices: LV and RV swapped, or myocardium painted as LV cavity."""
    out = label.copy()
    for i in _some_slices(label, rng, rng.uniform(0.2, 1.0)):
        s = label[i]
        if rng.random() < 0.5:
            out[i][s == LV], out[i][s == RV] = RV, LV
        else:
            out[i][s == MYO] = LV
    return out


def partial_delete(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Part of a structure erased on one side of a line through it (an unfinished edit)."""
    out = label.copy()
    c = int(rng.choice([RV, MYO, LV]))
    angle = rng.uniform(0, 2 * np.pi)
    for i in _some_slices(label, rng, rng.uniform(0.2, 1.0)):
        mask = label[i] == c
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        cy, cx = ys.mean(), xs.mean()
        offset = rng.uniform(-0.5, 0.5) * max(np.ptp(ys), np.ptp(xs), 1)
        side = (ys - cy) * np.cos(angle) + (xs - cx) * np.sin(angle) > offset
        out[i][ys[side], xs[side]] = MYO if c == LV else 0
    return out


def boundary_noise(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ragged boundaries: smooth random fields added to the class maps before taking the winner."""
    amplitude = rng.uniform(0.1, 0.45)
    sigma = rng.uniform(1.0, 4.0)
    out = label.copy()
    for i in _some_slices(label, rng, rng.uniform(0.4, 1.0)):
        band = ndimage.binary_dilation(label[i] > 0, _CROSS, iterations=6)  # only near the heart
        scores = np.stack([ndimage.gaussian_filter((label[i] == c).astype(float), 1.0) for c in range(4)])
        noise = np.stack([ndimage.gaussian_filter(rng.standard_normal(label[i].shape), sigma) for _ in range(4)])
        noise *= amplitude / max(noise.std(), 1e-6)
        out[i] = np.where(band, (scores + noise).argmax(0), label[i]).astype(label.dtype)
    return out


CORRUPTIONS: Dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "erode": erode,
    "dilate": dilate,
    "shift": shift,
    "drop_slices": drop_slices,
    "extra_slices": extra_slices,
    "swap_classes": swap_classes,
    "partial_delete": partial_delete,
    "boundary_noise": boundary_noise,
}


def corrupt(label: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, str]:
    """One random corruption, or two to three in a row (``"a+b"``); returns the label map and what was done."""
    names = list(CORRUPTIONS)
    picked = (
        [str(rng.choice(names))]
        if rng.random() < 0.6
        else list(rng.choice(names, int(rng.integers(2, 4)), replace=False))
    )
    out = label
    for name in picked:
        out = CORRUPTIONS[name](out, rng)
    return out.astype(label.dtype), "+".join(picked)

"""A small synthetic short-axis cine on an oblique grid, with its label, for the Slicer-side tests and benchmarks.

The stack is tilted like a real short-axis acquisition (not axial), so any mix-up of LPS and RAS, of array and
image axes or of the direction matrix shows up in the checks.
"""

import math
import os
from typing import List, Tuple

import numpy as np
import SimpleITK as sitk

from CMRAssistCore.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY


def oblique_direction(tilt_deg: float = 30.0, roll_deg: float = 20.0) -> Tuple[float, ...]:
    """A rotation matrix (row-major, 9 values) of a tilted short-axis stack."""
    a, b = math.radians(tilt_deg), math.radians(roll_deg)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return tuple((rz @ rx).flatten())


def phantom_frame(t: int, frames: int, shape=(8, 48, 40)) -> Tuple[np.ndarray, np.ndarray]:
    """Image and label (k, j, i) of frame ``t``: an LV blood pool in a myocardial ring, and an RV crescent,
    contracting from frame 0 (ED) to mid-cycle (ES)."""
    k, j, i = np.indices(shape)
    squeeze = 1.0 - 0.3 * math.sin(math.pi * t / max(frames - 1, 1))
    cy, cx = shape[1] / 2, shape[2] / 2 + 4
    r = np.hypot(j - cy, i - cx)
    lv_radius = 9.0 * squeeze * (1.0 - 0.08 * np.abs(k - shape[0] / 2))
    label = np.zeros(shape, np.uint8)
    label[r < lv_radius + 4] = LV_MYOCARDIUM
    label[r < lv_radius] = LV_CAVITY
    rv = (np.hypot(j - cy, i - (cx - 16)) < 9 * squeeze) & (r >= lv_radius + 4)
    label[rv] = RV_CAVITY
    label[(k == 0) | (k == shape[0] - 1)] = 0  # above the base and beyond the apex
    image = (label * 300 + 100 + (np.sin(i / 3.0 + t) * 20)).astype(np.int16)
    return image, label


def write_cine(folder: str, frames: int = 6, shape=(8, 48, 40), name: str = "cine") -> Tuple[str, str]:
    """Write ``<name>.nii.gz`` (4D image) and ``<name>_label.nii.gz`` (4D label) on an oblique grid."""
    os.makedirs(folder, exist_ok=True)
    images: List[sitk.Image] = []
    labels: List[sitk.Image] = []
    for t in range(frames):
        image, label = phantom_frame(t, frames, shape)
        images.append(_on_grid(sitk.GetImageFromArray(image)))
        labels.append(_on_grid(sitk.GetImageFromArray(label)))
    paths = os.path.join(folder, f"{name}.nii.gz"), os.path.join(folder, f"{name}_label.nii.gz")
    sitk.WriteImage(sitk.JoinSeries(images), paths[0])
    sitk.WriteImage(sitk.JoinSeries(labels), paths[1])
    return paths


def _on_grid(image: sitk.Image) -> sitk.Image:
    image.SetSpacing((1.5, 1.4, 8.0))
    image.SetOrigin((12.5, -30.25, 41.0))
    image.SetDirection(oblique_direction())
    return image


def write_big_cine(path: str, frames: int = 30, shape=(10, 256, 256), seed: int = 0) -> str:
    """A cine of clinical size (30 frames of 10 x 256 x 256 int16, noise added so it compresses little), for the
    transfer and GUI-block measurements."""
    rng = np.random.default_rng(seed)
    images = []
    for t in range(frames):
        image, _ = phantom_frame(t, frames, shape)
        images.append(_on_grid(sitk.GetImageFromArray(image + rng.integers(0, 200, shape, dtype=np.int16))))
    sitk.WriteImage(sitk.JoinSeries(images), path)
    return path

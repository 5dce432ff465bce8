"""Reading, checking and writing short-axis images and label maps (SimpleITK), and canonical orientation."""

import os
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from CMRAssistCore.labels import VALID_VALUES

# ACDC's sform scales make ITK warn on every read; the warning says nothing a user can act on.
sitk.ProcessObject_SetGlobalWarningDisplay(False)

MIN_SLICES = 2
MIN_INPLANE = 16
#: The smallest in-plane field of view the networks take: 32 pixels at their 1.5 mm (the U-Net halves a slice
#: four times; at 16 pixels its last stage has one pixel, which instance normalisation cannot normalise).
MIN_FOV_MM = 48.0
#: Plausible MR voxel spacing (mm): in-plane, and between slices.
INPLANE_MM = (0.1, 20.0)
SLICE_MM = (0.3, 100.0)


def read_image(path: str) -> sitk.Image:
    """Read an image file, turning every reader failure into :class:`CMRAssistError`."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise CMRAssistError(f"file {os.path.basename(path)!r} is missing or empty")
    try:
        return sitk.ReadImage(path)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
        raise CMRAssistError(
            f"{os.path.basename(path)!r} is not a readable image (NIfTI .nii/.nii.gz or NRRD expected): {first}"
        ) from None


def check_study_image(image: sitk.Image) -> None:
    """Refuse what cannot be a short-axis stack: 2D images, single slices, tiny or multi-component images."""
    dim = image.GetDimension()
    size = image.GetSize()
    if dim not in (3, 4):
        raise CMRAssistError(f"image is {dim}D with size {size}; a short-axis stack (3D) or cine (4D) is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CMRAssistError("image has several components per voxel (colour?); a grey-level MR image is needed")
    if min(size[:3]) < MIN_SLICES:
        raise CMRAssistError(f"image has a single slice (size {size}); a stack of at least {MIN_SLICES} is needed")
    if dim == 4 and size[3] < 1:
        raise CMRAssistError("cine has no frames")
    check_geometry(size[:3], image.GetSpacing()[:3])
    if (
        image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64)
        and not np.isfinite(sitk.GetArrayViewFromImage(image)).all()
    ):
        raise CMRAssistError("image holds NaN or infinite values; export it again from the scanner or viewer")


def check_geometry(size, spacing) -> None:
    """Refuse a 3D grid the models cannot take: spacing no MR acquisition has, or slices too small in pixels or in
    field of view (checked from a file's header before its voxels are read, and again on the image).

    Args:
        size: voxels along x, y, z.
        spacing: mm along x, y, z (the coarsest axis is the slice axis).
    """
    check_spacing(spacing)
    slice_axis = int(np.argmax(spacing))
    for axis in (a for a in range(3) if a != slice_axis):
        pixels, fov = int(size[axis]), float(size[axis]) * float(spacing[axis])
        if pixels < MIN_INPLANE or fov < MIN_FOV_MM - 1e-6:
            raise CMRAssistError(
                f"image size {tuple(size)} at {tuple(round(s, 3) for s in spacing)} mm is too small "
                f"in-plane: the models take at least {MIN_INPLANE} pixels and {MIN_FOV_MM:g} mm "
                f"across a slice ({MIN_FOV_MM / 1.5:.0f} pixels at their 1.5 mm)",
                422,
            )


def check_spacing(spacing) -> None:
    """Refuse spacings no MR acquisition has (they would make preprocessing resample to nothing or to gigabytes)."""
    spacing = sorted(float(s) for s in spacing[:3])
    inplane, between = spacing[:2], spacing[2]
    if (
        not (INPLANE_MM[0] <= min(inplane) and max(inplane) <= INPLANE_MM[1])
        or not SLICE_MM[0] <= between <= SLICE_MM[1]
    ):
        raise CMRAssistError(
            f"voxel spacing {tuple(round(s, 4) for s in spacing)} mm is outside what "
            f"MR images have (in-plane {INPLANE_MM[0]}-{INPLANE_MM[1]} mm, between slices "
            f"{SLICE_MM[0]}-{SLICE_MM[1]} mm)",
            422,
        )


def check_label(label: sitk.Image, image: sitk.Image) -> np.ndarray:
    """Check a label map against its image and return it as an integer array.

    Args:
        label: the uploaded label map.
        image: the study image it belongs to (3D, or 4D cine: the label may then be 3D for one frame or 4D).
    """
    if label.GetNumberOfComponentsPerPixel() != 1:
        raise CMRAssistError("label map has several components per voxel; one integer per voxel is needed")
    lsize, isize = label.GetSize(), image.GetSize()
    if lsize != isize and not (image.GetDimension() == 4 and lsize == isize[:3]):
        raise CMRAssistError(f"label map size {lsize} does not match the image size {isize}")
    _check_same_grid(label, image)
    array = sitk.GetArrayFromImage(label)
    if not np.all(np.isfinite(array)) or not np.all(np.equal(np.mod(array, 1), 0)):
        raise CMRAssistError("label map has non-integer values")
    values = set(np.unique(array).astype(int).tolist())
    unknown = sorted(values - set(VALID_VALUES))
    if unknown:
        raise CMRAssistError(
            f"label map has unknown values {unknown[:10]}; expected 0 background, 1 RV cavity, 2 LV myocardium, "
            "3 LV cavity"
        )
    return array.astype(np.uint8)


def _check_same_grid(label: sitk.Image, image: sitk.Image) -> None:
    """Spacing, origin and direction of the label's first three axes must be the image's (a label drawn on
    another grid, shifted or flipped, would be stored as a wrong ground truth)."""
    lsp, isp = np.asarray(label.GetSpacing()[:3]), np.asarray(image.GetSpacing()[:3])
    if not np.allclose(lsp, isp, rtol=1e-3, atol=1e-3):
        raise CMRAssistError(f"label spacing {tuple(lsp)} differs from image spacing {tuple(isp)}")
    lo, io = np.asarray(label.GetOrigin()[:3]), np.asarray(image.GetOrigin()[:3])
    if np.abs(lo - io).max() > 0.01 * float(isp.min()) + 1e-3:
        raise CMRAssistError(
            f"label origin {tuple(np.round(lo, 3))} differs from the image's {tuple(np.round(io, 3))} mm"
        )
    ld = np.asarray(label.GetDirection()).reshape(label.GetDimension(), -1)[:3, :3]
    idr = np.asarray(image.GetDirection()).reshape(image.GetDimension(), -1)[:3, :3]
    if not np.allclose(ld, idr, atol=1e-4):
        raise CMRAssistError(
            "label orientation (direction cosines) differs from the image's: the label is flipped or rotated against it"
        )


@dataclass(frozen=True)
class Orientation:
    """How a numpy ``(z, y, x)`` array maps to canonical ``(slice, row, column)``: transpose, then flip.

    The slice axis is the one with the coarsest spacing; in-plane axes are flipped and ordered so that their
    direction cosines point along +x (columns) and +y (rows) as far as the acquisition allows.
    """

    axes: Tuple[int, int, int]
    flips: Tuple[int, ...]
    spacing: Tuple[float, float, float]

    @classmethod
    def of(cls, image: sitk.Image) -> "Orientation":
        spacing = np.asarray(image.GetSpacing()[:3], dtype=float)
        dim = image.GetDimension()
        direction = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)[:3, :3]
        # sitk axis k is numpy axis 2-k; prefer the stored slice axis (2) on ties.
        slice_k = 2 if spacing[2] >= spacing.max() - 1e-3 else int(np.argmax(spacing))
        inplane = [k for k in range(3) if k != slice_k]
        dominant = {k: int(np.argmax(np.abs(direction[:, k]))) for k in inplane}
        col_k, row_k = sorted(inplane, key=lambda k: dominant[k])
        axes = (2 - slice_k, 2 - row_k, 2 - col_k)
        flips = tuple(pos for pos, k in ((1, row_k), (2, col_k)) if direction[dominant[k], k] < 0)
        return cls(
            axes=axes, flips=flips, spacing=(float(spacing[slice_k]), float(spacing[row_k]), float(spacing[col_k]))
        )

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """``(z, y, x)`` -> ``(slice, row, column)``."""
        out = np.transpose(array, self.axes)
        return np.ascontiguousarray(np.flip(out, self.flips) if self.flips else out)

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_canonical`."""
        out = np.flip(array, self.flips) if self.flips else array
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.axes)))


def frames_of(image: sitk.Image) -> np.ndarray:
    """The image as ``(frames, z, y, x)`` float32; a 3D image is one frame."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    return array[None] if image.GetDimension() == 3 else array


def extract_frame(cine: sitk.Image, index: int) -> sitk.Image:
    """Frame ``index`` (0-based) of a 4D cine as a 3D image with the cine's geometry."""
    size = list(cine.GetSize())
    return sitk.Extract(cine, size[:3] + [0], [0, 0, 0, index])


def write_label_like(label: np.ndarray, reference: sitk.Image, path: str) -> str:
    """Write a ``(z, y, x)`` or ``(t, z, y, x)`` uint8 label with the reference image's geometry."""
    label = label.astype(np.uint8)
    # GetImageFromArray never makes a 4D image: a cine is joined from its 3D frames.
    out = (
        sitk.GetImageFromArray(label)
        if label.ndim == 3
        else sitk.JoinSeries([sitk.GetImageFromArray(f) for f in label])
    )
    out.CopyInformation(reference)
    sitk.WriteImage(out, path, useCompression=True)
    return path

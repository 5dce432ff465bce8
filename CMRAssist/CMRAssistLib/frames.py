"""Cine and label files: frames out of a 4D image, frames back into one, and the quick-to-load frame copies.

SimpleITK ships with Slicer. These run in the worker process (``worker.py``): reading a compressed cine takes
longer than the GUI thread may be held, so the viewer only ever loads the uncompressed one-frame copies.
"""

import os
from typing import List

import SimpleITK as sitk

#: Frame copies are uncompressed NRRD: exact LPS geometry and a few milliseconds to load.
FRAME_SUFFIX = ".nrrd"


def count_frames(path: str) -> int:
    """1 for a 3D image, the length of the 4th axis for a cine; reads only the header."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return int(reader.GetSize()[3]) if reader.GetDimension() == 4 else 1


def extract_frame(cine: sitk.Image, index: int) -> sitk.Image:
    """Frame ``index`` (0-based) of a 4D cine as a 3D image with the cine's spatial geometry."""
    if cine.GetDimension() != 4:
        raise ValueError("not a 4D cine")
    size = list(cine.GetSize())
    if not 0 <= index < size[3]:
        raise ValueError(f"frame index {index} is outside 0-{size[3] - 1}")
    extract = sitk.ExtractImageFilter()
    extract.SetSize(size[:3] + [0])
    extract.SetIndex([0, 0, 0, index])
    # Keep the spatial 3x3 block of the 4D direction instead of guessing.
    extract.SetDirectionCollapseToStrategy(sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)
    return extract.Execute(cine)


def write_frame(cine_path: str, index: int, out_path: str) -> str:
    """Write frame ``index`` (0-based) of the cine file as a 3D image file."""
    sitk.WriteImage(extract_frame(sitk.ReadImage(cine_path), index), out_path, useCompression=True)
    return out_path


def split_frames(path: str, folder: str) -> List[str]:
    """Uncompressed copies of each frame of ``path`` (one for a 3D image) in ``folder``, in frame order.

    Args:
        path: a 3D image or a 4D cine.
        folder: created if missing; earlier copies there are replaced.
    """
    os.makedirs(folder, exist_ok=True)
    image = sitk.ReadImage(path)
    frames = [image] if image.GetDimension() == 3 else [extract_frame(image, t) for t in range(image.GetSize()[3])]
    paths = []
    for number, frame in enumerate(frames, start=1):
        out = os.path.join(folder, f"frame{number:03d}{FRAME_SUFFIX}")
        sitk.WriteImage(frame, out, useCompression=False)
        paths.append(out)
    return paths


def join_frames(frame_paths: List[str], reference_path: str, out_path: str) -> str:
    """One label file on the grid of ``reference_path`` (3D, or 4D for a cine) from per-frame label files.

    The reference's geometry is copied, so the file matches the study image exactly, whatever the viewer wrote.
    """
    frames = [sitk.Cast(sitk.ReadImage(p), sitk.sitkUInt8) for p in frame_paths]
    out = frames[0] if len(frames) == 1 else sitk.JoinSeries(frames)
    reader = sitk.ImageFileReader()
    reader.SetFileName(reference_path)
    reader.ReadImageInformation()
    if tuple(out.GetSize()) != tuple(reader.GetSize()):
        raise ValueError(f"label size {out.GetSize()} does not match the study's {reader.GetSize()}")
    _check_grid(frames[0], reader)
    out.SetOrigin(reader.GetOrigin())
    out.SetSpacing(reader.GetSpacing())
    out.SetDirection(reader.GetDirection())
    sitk.WriteImage(out, out_path, useCompression=True)
    return out_path


def _check_grid(frame: sitk.Image, reference: sitk.ImageFileReader, tolerance: float = 1e-3) -> None:
    """Refuse a label whose frame is not on the study's grid (a viewer bug must not reach the datastore)."""
    origin, spacing = reference.GetOrigin()[:3], reference.GetSpacing()[:3]
    direction = reference.GetDirection()
    if len(direction) == 16:  # the spatial 3x3 block of a 4D direction
        direction = [direction[4 * r + c] for r in range(3) for c in range(3)]
    for name, got, want in (
        ("origin", frame.GetOrigin(), origin),
        ("spacing", frame.GetSpacing(), spacing),
        ("direction", frame.GetDirection(), direction),
    ):
        if max(abs(a - b) for a, b in zip(got, want)) > tolerance:
            raise ValueError(f"the label's {name} {tuple(got)} is not the study's {tuple(want)}")


def label_summary(label_path: str) -> str:
    """LV cavity and RV cavity volume and LV myocardial mass of a 3D label file (one line)."""
    from CMRAssistCore.measures import MYOCARDIAL_DENSITY_G_PER_ML, class_volumes_ml

    frames = count_frames(label_path)
    if frames > 1:
        return f"{frames} frames segmented"
    image = sitk.ReadImage(label_path)
    volumes = class_volumes_ml(sitk.GetArrayViewFromImage(image), tuple(reversed(image.GetSpacing())))
    return (
        f"LV cavity {volumes['lv_cavity']:.1f} ml, RV cavity {volumes['rv_cavity']:.1f} ml, "
        f"LV myocardium {volumes['lv_myocardium'] * MYOCARDIAL_DENSITY_G_PER_ML:.1f} g"
    )

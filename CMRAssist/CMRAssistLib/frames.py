"""Frames of a cine file: how many there are, and one of them as a 3D image (SimpleITK ships with Slicer)."""

import SimpleITK as sitk


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

"""What a file from a client must be before its pixels are read: a self-contained NIfTI, NRRD or DICOM file,
whole (not truncated), finite, of a size and geometry the server and its models take.

ITK picks a reader by file name and follows references inside headers (NRRD ``data file:``, MetaImage
``ElementDataFile``, NIfTI ``.hdr``/``.img`` pairs), which would let an upload read any file on the server; a
truncated ``.nii.gz`` reads with its missing voxels silently zero; ITK's NIfTI reader turns NaN into 0 while the
stored bytes keep them; a small gzip can unpack to gigabytes. So the format is recognised from the bytes, the
whole header is read by ``headers.py`` (voxel count, spacing and size checked before any voxel), the voxels are
streamed once to check they are all there and finite, and only then does ITK read them, with its reader named.
"""

import gzip
import os
import zlib
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.headers import Header, content_head, nifti_header, nrrd_header
from cmrassist_server.imaging.imageio import check_geometry

#: Default cap on the voxels of one uploaded image (a 30-frame 20-slice 512 x 512 cine is 157 M).
MAX_VOXELS = 256 * 1024 * 1024
_IO = {"nifti": "NiftiImageIO", "nrrd": "NrrdImageIO", "dicom": "GDCMImageIO"}
_CHUNK = 1 << 20


def sniff_format(path: str) -> str:
    """``nifti``, ``nrrd`` or ``dicom`` from the file's bytes; anything else (and detached headers) is refused."""
    head, compressed = content_head(path, 1024)
    name = os.path.basename(path)
    for order in "<>":
        size = int(np.frombuffer(head[:4], order + "i4")[0]) if len(head) >= 4 else 0
        if size in (348, 540) and len(head) >= 348:
            if (head[344:348] if size == 348 else head[4:8]) in (b"n+1\x00", b"n+2\x00"):
                return "nifti"
            raise CMRAssistError(
                f"{name!r} is a NIfTI header without its data (.hdr/.img pair): upload one .nii or .nii.gz"
            )
    if head.startswith(b"NRRD000") and not compressed:
        return "nrrd"
    if not compressed and head[128:132] == b"DICM":
        return "dicom"
    raise CMRAssistError(f"{name!r} is not a NIfTI (.nii, .nii.gz), single-file NRRD or DICOM file")


def _reader(path: str, kind: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetImageIO(_IO[kind])
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise CMRAssistError(f"{os.path.basename(path)!r} has an unreadable header: {_last_line(e)}") from None
    return reader


def _last_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else "unreadable"


def read_header(path: str) -> Header:
    """The file's header (NIfTI and NRRD parsed here; DICOM through GDCM's header read)."""
    kind = sniff_format(path)
    if kind == "nifti":
        head, compressed = content_head(path, 540)
        return nifti_header(path, head, compressed)
    if kind == "nrrd":
        return nrrd_header(path)
    reader = _reader(path, kind)
    size, spacing = reader.GetSize(), reader.GetSpacing()
    return Header("dicom", tuple(size), tuple(abs(s) for s in spacing), None, reader.GetNumberOfComponents())


def _payload(path: str, header: Header) -> Iterator[bytes]:
    """The voxel bytes in blocks of at most 1 MiB (unzipped as they come); a truncated gzip stream raises."""
    opener = gzip.open if header.gzip_file else open
    with opener(path, "rb") as f:
        f.seek(header.offset)
        inflate = zlib.decompressobj(47) if header.gzip_payload else None
        while True:
            block = f.read(_CHUNK)
            if not block:
                break
            while inflate is not None and block:
                yield inflate.decompress(block, _CHUNK)
                block = inflate.unconsumed_tail
            if inflate is None:
                yield block
        if inflate is not None and not inflate.eof:
            raise EOFError("the compressed voxels end early")


def check_voxels(path: str, header: Header) -> None:
    """Refuse a file whose voxels are fewer than its header promises (truncated) or not all finite.

    Streams the payload once, up to the promised length (a gzip bomb stops there)."""
    if header.dtype is None or header.text:
        return  # GDCM fails on a short pixel element; ITK fails on missing text values
    expected, have, rest = header.payload_bytes, 0, b""
    floating = header.dtype.kind == "f"
    try:
        for block in _payload(path, header):
            block = block[: expected - have]
            have += len(block)
            if floating:
                data = rest + block
                cut = len(data) - len(data) % header.dtype.itemsize
                if not np.isfinite(np.frombuffer(data[:cut], header.dtype)).all():
                    raise CMRAssistError(
                        "image holds NaN or infinite values; export it again from the scanner or viewer", 422
                    )
                rest = data[cut:]
            if have >= expected:
                return
    except (OSError, EOFError, zlib.error):
        have = -1
    held = "its compressed data ends early" if have < 0 else f"the file holds {have}"
    raise CMRAssistError(
        f"{os.path.basename(path)!r} is truncated: its header promises {expected} bytes of voxels, {held}"
    )


def check_header(path: str, *, max_voxels: int = MAX_VOXELS) -> Header:
    """The header of a client's file, refused when too large (413) or of a geometry no model takes (422)."""
    header = read_header(path)
    if header.voxels > max_voxels:
        raise CMRAssistError(
            f"{os.path.basename(path)!r} holds {header.voxels:,} voxels, more than the "
            f"{max_voxels:,} this server accepts (max_voxels setting)",
            413,
        )
    if len(header.size) >= 3 and len(header.spacing) >= 3:
        check_geometry(header.size[:3], header.spacing[:3])
    return header


def _squeezed(size) -> tuple:
    """A size without trailing 1s (readers differ on whether a 2D NIfTI is 2D or 3D with one slice)."""
    size = tuple(int(s) for s in size)
    while len(size) > 1 and size[-1] == 1:
        size = size[:-1]
    return size


def read_untrusted(path: str, *, max_voxels: int = MAX_VOXELS) -> sitk.Image:
    """Read a client's file after the checks above.

    Raises:
        CMRAssistError: 400 for a refused format, a damaged or truncated file; 413 for too many voxels; 422 for a
            geometry the models cannot take or non-finite voxels.
    """
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise CMRAssistError(f"file {os.path.basename(path)!r} is missing or empty")
    header = check_header(path, max_voxels=max_voxels)
    check_voxels(path, header)
    reader = _reader(path, header.kind)
    if _squeezed(reader.GetSize()) != _squeezed(header.size):
        raise CMRAssistError(
            f"{os.path.basename(path)!r} has a header ITK reads as size {reader.GetSize()}, not "
            f"{header.size}: export it again"
        )
    try:
        return reader.Execute()
    except RuntimeError as e:
        raise CMRAssistError(f"{os.path.basename(path)!r} is not a readable image: {_last_line(e)}") from None

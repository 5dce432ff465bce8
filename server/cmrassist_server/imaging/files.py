"""What a file from a client must be before its pixels are read: a self-contained NIfTI, NRRD or DICOM file,
whole (not truncated), of a size the server accepts.

ITK picks a reader by file name and follows references inside headers (NRRD ``data file:``, MetaImage
``ElementDataFile``, NIfTI ``.hdr``/``.img`` pairs), which would let an upload read any file on the server; a
truncated ``.nii.gz`` reads with its missing voxels silently zero; a small gzip can unpack to gigabytes. So the
format is recognised from the bytes, the reader is named explicitly, the voxel count is checked from the header
before any pixel is read, and the stored data is checked to be complete.
"""

import gzip
import os
import struct
from typing import Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError

#: Default cap on the voxels of one uploaded image (a 30-frame 20-slice 512 x 512 cine is 157 M).
MAX_VOXELS = 256 * 1024 * 1024
_IO = {"nifti": "NiftiImageIO", "nrrd": "NrrdImageIO", "dicom": "GDCMImageIO"}
_CHUNK = 1 << 20


def _head(path: str, n: int = 1024) -> Tuple[bytes, bool]:
    """The first ``n`` bytes of the file's content (of its gzip stream when compressed) and whether it is gzip."""
    with open(path, "rb") as f:
        start = f.read(2)
    compressed = start == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            return f.read(n), compressed
    except (OSError, EOFError) as e:
        raise CMRAssistError(f"{os.path.basename(path)!r} is a damaged gzip file: {e}") from None


def _nifti_header(head: bytes) -> Tuple[str, int]:
    """``(byte order, sizeof_hdr)`` of a NIfTI-1 (348) or NIfTI-2 (540) header, or ``("", 0)``."""
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0] if len(head) >= 4 else 0
        if size in (348, 540):
            return order, size
    return "", 0


def sniff_format(path: str) -> str:
    """``nifti``, ``nrrd`` or ``dicom`` from the file's bytes; anything else (and detached headers) is refused."""
    head, compressed = _head(path)
    name = os.path.basename(path)
    _, size = _nifti_header(head)
    if size and len(head) >= 348:
        magic = head[344:348] if size == 348 else head[4:8]
        if magic in (b"n+1\x00", b"n+2\x00"):
            return "nifti"
        raise CMRAssistError(
            f"{name!r} is a NIfTI header without its data (.hdr/.img pair): upload one .nii or .nii.gz"
        )
    if head.startswith(b"NRRD000"):
        header = head.split(b"\n\n", 1)[0].lower()
        if b"data file:" in header or b"datafile:" in header:
            raise CMRAssistError(f"{name!r} is a detached NRRD header: upload a single-file .nrrd (data inside)")
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


def _payload_bytes(path: str, skip: int, want: int) -> int:
    """Bytes of content after ``skip`` (decompressed when gzip), counted up to ``want + 1`` (a bomb stops there)."""
    compressed = _head(path, 2)[1]
    total = 0
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            f.seek(skip)
            while total <= want:
                block = f.read(min(_CHUNK, want + 1 - total))
                if not block:
                    break
                total += len(block)
    except (OSError, EOFError):
        return -1  # the compressed stream ends before its end marker: truncated
    return total


def _check_complete(path: str, kind: str, reader: sitk.ImageFileReader) -> None:
    """Refuse a file whose pixel data is shorter than its header says (truncated upload)."""
    voxels = int(np.prod(reader.GetSize())) * reader.GetNumberOfComponents()
    expected = voxels * sitk.GetArrayViewFromImage(sitk.Image([1, 1], reader.GetPixelID())).dtype.itemsize
    if kind == "nifti":
        head = _head(path, 352)[0]
        little = struct.unpack("<i", head[:4])[0] in (348, 540)
        two = struct.unpack("<i" if little else ">i", head[:4])[0] == 540
        offset = struct.unpack(
            ("<" if little else ">") + ("q" if two else "f"), head[168:176] if two else head[108:112]
        )[0]
        have = _payload_bytes(path, int(offset), expected)
    elif kind == "nrrd":
        with open(path, "rb") as f:
            header = f.read(64 * 1024).split(b"\n\n", 1)[0]
        have = _nrrd_payload(path, len(header) + 2, header.lower(), expected)
    else:
        return  # GDCM reads the pixel data element's declared length and fails on a short file
    if have < expected:
        held = "its compressed data ends early" if have < 0 else f"the file holds {have}"
        raise CMRAssistError(f"{os.path.basename(path)!r} is truncated: its header promises {expected} bytes of "
                             f"voxels, {held}")  # fmt: skip


def _nrrd_payload(path: str, start: int, header: bytes, expected: int) -> int:
    if b"encoding: raw" in header:
        return os.path.getsize(path) - start
    if b"encoding: gzip" in header or b"encoding: gz" in header:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
        tmp = path + ".payload.gz"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            return _payload_bytes(tmp, 0, expected)
        finally:
            os.remove(tmp)
    return expected  # text encodings: ITK's reader fails on missing values


def read_untrusted(path: str, *, max_voxels: int = MAX_VOXELS) -> sitk.Image:
    """Read a client's file after the checks above.

    Raises:
        CMRAssistError: 400 for a refused format, a damaged or truncated file; 413 for too many voxels.
    """
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise CMRAssistError(f"file {os.path.basename(path)!r} is missing or empty")
    kind = sniff_format(path)
    reader = _reader(path, kind)
    voxels = int(np.prod(reader.GetSize())) * reader.GetNumberOfComponents()
    if voxels > max_voxels:
        raise CMRAssistError(f"{os.path.basename(path)!r} holds {voxels:,} voxels, more than the {max_voxels:,} this "
                             "server accepts (max_voxels setting)", 413)  # fmt: skip
    _check_complete(path, kind, reader)
    try:
        return reader.Execute()
    except RuntimeError as e:
        raise CMRAssistError(f"{os.path.basename(path)!r} is not a readable image: {_last_line(e)}") from None

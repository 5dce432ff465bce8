"""One reader of upload headers (NIfTI-1/2 and NRRD, whole; DICOM through GDCM): the image's size, spacing, voxel
type and where its voxels start, read before any voxel is.

NRRD headers are read to their end (the first empty line, ``\\r`` stripped, as Teem reads them) and a header that
names another file (``data file``/``datafile``, any case or spacing) is refused wherever it stands; MetaImage and
NIfTI ``.hdr``/``.img`` pairs are refused as formats (``files.sniff_format``).
"""

import gzip
import math
import os
import struct
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from cmrassist_server.core.errors import CMRAssistError

#: The longest NRRD header read (a real one is under 2 KiB).
MAX_NRRD_HEADER = 1 << 20
#: NIfTI datatype code -> (numpy type, components).
NIFTI_TYPES: Dict[int, Tuple[str, int]] = {
    2: ("u1", 1),
    4: ("i2", 1),
    8: ("i4", 1),
    16: ("f4", 1),
    64: ("f8", 1),
    256: ("i1", 1),
    512: ("u2", 1),
    768: ("u4", 1),
    1024: ("i8", 1),
    1280: ("u8", 1),
    128: ("u1", 3),
    2304: ("u1", 4),
}
NRRD_TYPES = {
    "u1": ("uchar", "unsignedchar", "uint8", "uint8_t"),
    "i1": ("signedchar", "int8", "int8_t"),
    "i2": ("short", "shortint", "signedshort", "signedshortint", "int16", "int16_t"),
    "u2": ("ushort", "unsignedshort", "unsignedshortint", "uint16", "uint16_t"),
    "i4": ("int", "signedint", "int32", "int32_t"),
    "u4": ("uint", "unsignedint", "uint32", "uint32_t"),
    "i8": ("longlong", "longlongint", "signedlonglong", "signedlonglongint", "int64", "int64_t"),
    "u8": ("ulonglong", "unsignedlonglong", "unsignedlonglongint", "uint64", "uint64_t"),
    "f4": ("float",),
    "f8": ("double",),
}


@dataclass(frozen=True)
class Header:
    """What a file's header says.

    Args:
        kind: ``nifti``, ``nrrd`` or ``dicom``.
        size: voxels along each axis (x, y, z[, t]).
        spacing: mm between voxels along the spatial axes.
        dtype: voxel type on disk (``None`` where GDCM decodes it).
        components: values per voxel.
        offset: where the voxels start in the file's content (after gunzip of a ``.nii.gz``).
        gzip_file: the whole file is gzip (``.nii.gz``).
        gzip_payload: the voxels are a gzip stream after the header (NRRD ``encoding: gzip``).
        text: the voxels are text (NRRD ``ascii``/``hex``): ITK parses them.
    """

    kind: str
    size: Tuple[int, ...]
    spacing: Tuple[float, ...]
    dtype: Optional[np.dtype]
    components: int = 1
    offset: int = 0
    gzip_file: bool = False
    gzip_payload: bool = False
    text: bool = False

    @property
    def voxels(self) -> int:
        return int(np.prod(self.size, dtype=np.float64)) * self.components

    @property
    def payload_bytes(self) -> int:
        return self.voxels * (self.dtype.itemsize if self.dtype is not None else 1)


def _bad(path: str, why: str) -> CMRAssistError:
    return CMRAssistError(f"{os.path.basename(path)!r} {why}")


def nifti_header(path: str, head: bytes, gzip_file: bool) -> Header:
    """The header of a NIfTI-1 (348 bytes) or NIfTI-2 (540 bytes) file, from its first 540 content bytes."""
    order = "<" if struct.unpack("<i", head[:4])[0] in (348, 540) else ">"
    two = struct.unpack(order + "i", head[:4])[0] == 540
    if len(head) < (540 if two else 348):
        raise _bad(path, "is shorter than a NIfTI header")
    if two:
        code = struct.unpack_from(order + "h", head, 12)[0]
        dim, pixdim = struct.unpack_from(order + "8q", head, 16), struct.unpack_from(order + "8d", head, 104)
        offset, slope, inter = (
            struct.unpack_from(order + "q", head, 168)[0],
            *struct.unpack_from(order + "2d", head, 176),
        )
    else:
        code = struct.unpack_from(order + "h", head, 70)[0]
        dim, pixdim = struct.unpack_from(order + "8h", head, 40), struct.unpack_from(order + "8f", head, 76)
        offset, slope, inter = struct.unpack_from(order + "3f", head, 108)
    if code not in NIFTI_TYPES:
        raise _bad(path, f"has NIfTI voxel type {code}, which the server does not read")
    rank = dim[0]
    if not 1 <= rank <= 7 or min(dim[1 : rank + 1]) < 1:
        raise _bad(path, f"has an invalid NIfTI dim field {tuple(dim)}")
    if not all(math.isfinite(v) for v in (*pixdim, offset, slope, inter)):
        raise CMRAssistError(f"{os.path.basename(path)!r} has NaN or infinite values in its header", 422)
    kind, components = NIFTI_TYPES[code]
    spacing = tuple(abs(float(p)) for p in pixdim[1 : min(rank, 3) + 1])
    return Header(
        "nifti",
        tuple(int(d) for d in dim[1 : rank + 1]),
        spacing,
        np.dtype(order + kind),
        components,
        int(offset),
        gzip_file=gzip_file,
    )


def _nrrd_fields(path: str) -> Tuple[Dict[str, str], int]:
    """The NRRD header's fields (names lower-cased without spaces) and where its data starts."""
    with open(path, "rb") as f:
        raw = f.read(MAX_NRRD_HEADER)
    fields: Dict[str, str] = {}
    position = 0
    for number, line in enumerate(raw.split(b"\n")):
        end = position + len(line) + 1
        text = line.rstrip(b"\r").decode("latin-1")
        if number and not text:
            return fields, end
        position = end
        if number == 0 or text.startswith("#") or ":=" in text:
            continue  # magic, comment, key/value pair
        name, colon, value = text.partition(":")
        key = name.replace(" ", "").lower()
        if not colon:
            raise _bad(path, f"has a NRRD header line that is not a field: {text[:60]!r}")
        if key == "datafile":
            raise _bad(path, "is a detached NRRD header (its data file is named inside): upload a single-file .nrrd")
        fields[key] = value.strip()
    if len(raw) >= MAX_NRRD_HEADER:
        raise _bad(path, f"has a NRRD header longer than {MAX_NRRD_HEADER // 1024} KiB")
    raise _bad(path, "is a NRRD header without data (no empty line ends it): upload a single-file .nrrd")


def _nrrd_spacing(fields: Dict[str, str], rank: int) -> Tuple[float, ...]:
    if "spacings" in fields:
        values = [float(v) for v in fields["spacings"].split()]
    elif "spacedirections" in fields:
        values = []
        for vector in fields["spacedirections"].replace(")", ") ").split():
            if vector.lower() == "none":
                values.append(float("nan"))
            else:
                values.append(float(np.linalg.norm([float(v) for v in vector.strip("()").split(",")])))
    else:
        values = [1.0] * rank
    return tuple(abs(v) for v in values if not math.isnan(v))


def nrrd_header(path: str) -> Header:
    """The header of a single-file NRRD (raw, gzip or text encoded)."""
    fields, offset = _nrrd_fields(path)
    try:
        rank = int(fields["dimension"])
        size = tuple(int(v) for v in fields["sizes"].split())
        spacing = _nrrd_spacing(fields, rank)
        kind = fields["type"].replace(" ", "").lower()
    except (KeyError, ValueError) as e:
        raise _bad(path, f"has an incomplete or invalid NRRD header ({e})") from None
    dtype = next((k for k, names in NRRD_TYPES.items() if kind in names), None)
    encoding = fields.get("encoding", "").lower()
    if dtype is None or encoding not in ("raw", "gzip", "gz", "ascii", "text", "txt", "hex"):
        raise _bad(path, f"has NRRD type {kind!r} / encoding {encoding!r}, which the server does not read")
    if len(size) != rank or min(size, default=0) < 1 or not all(math.isfinite(s) for s in spacing):
        raise _bad(path, f"has invalid NRRD sizes {size} or spacings {spacing}")
    components = size[0] if len(spacing) < rank else 1
    order = ">" if fields.get("endian", "little").lower() == "big" else "<"
    return Header(
        "nrrd",
        size[1:] if components > 1 else size,
        spacing,
        np.dtype(order + dtype),
        components,
        offset,
        gzip_payload=encoding in ("gzip", "gz"),
        text=encoding in ("ascii", "text", "txt", "hex"),
    )


def content_head(path: str, n: int) -> Tuple[bytes, bool]:
    """The first ``n`` bytes of the file's content (of its gzip stream when compressed) and whether it is gzip."""
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            return f.read(n), compressed
    except (OSError, EOFError) as e:
        raise _bad(path, f"is a damaged gzip file: {e}") from None

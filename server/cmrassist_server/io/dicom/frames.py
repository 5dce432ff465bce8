"""One record per 2D frame of a DICOM file (a classic MR image is one frame; an enhanced MR image holds many), with
what sorting a cine needs: position, orientation, spacing, trigger time, temporal index, rescale."""

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@dataclass(frozen=True)
class FrameRecord:
    """A 2D frame: where it comes from (``source``: a file path or an instance key) and how it lies in space.

    ``frame`` is the 1-based frame number inside a multi-frame instance, ``None`` for a classic single-frame one.
    """

    source: str
    frame: Optional[int]
    sop_class: str
    sop_instance: str
    study: str
    series: str
    series_number: int
    series_description: str
    frame_of_reference: str
    orientation: Tuple[float, ...]
    position: Tuple[float, float, float]
    pixel_spacing: Tuple[float, float]
    slice_thickness: float
    rows: int
    columns: int
    trigger_time: Optional[float]
    temporal_index: Optional[int]
    instance_number: int
    slope: float
    intercept: float
    image_type: Tuple[str, ...]
    #: Phases the scanner says it acquired (Cardiac Number of Images / Number of Temporal Positions), if given.
    n_phases: Optional[int] = None

    @property
    def normal(self) -> np.ndarray:
        row, col = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        n = np.cross(row, col)
        return n / (np.linalg.norm(n) or 1.0)

    @property
    def phase_key(self) -> Tuple[float, float]:
        """What orders the phases of one slice: trigger time, else temporal position, else instance number."""
        if self.trigger_time is not None:
            return (float(self.trigger_time), float(self.temporal_index or 0))
        return (float(self.temporal_index if self.temporal_index is not None else self.instance_number), 0.0)


def _floats(value: Any, n: int) -> Optional[Tuple[float, ...]]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _number(value: Any, cast: Callable = float) -> Optional[Any]:
    try:
        return cast(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _first(ds: Dataset, sequence: str) -> Optional[Dataset]:
    seq = ds.get(sequence)
    return seq[0] if seq else None


def _group(frame_fg: Optional[Dataset], shared_fg: Optional[Dataset], sequence: str) -> Optional[Dataset]:
    """A functional group item: the frame's own, else the shared one."""
    for fg in (frame_fg, shared_fg):
        if fg is not None and _first(fg, sequence) is not None:
            return _first(fg, sequence)
    return None


def _common(ds: Dataset, source: str) -> Dict[str, Any]:
    return {
        "source": source,
        "sop_class": str(ds.get("SOPClassUID", "")),
        "sop_instance": str(ds.get("SOPInstanceUID", "")),
        "study": str(ds.get("StudyInstanceUID", "")),
        "series": str(ds.get("SeriesInstanceUID", "")),
        "series_number": _number(ds.get("SeriesNumber"), int) or 0,
        "series_description": str(ds.get("SeriesDescription", "")),
        "frame_of_reference": str(ds.get("FrameOfReferenceUID", "")),
        "image_type": tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
        "n_phases": _number(ds.get("CardiacNumberOfImages", ds.get("NumberOfTemporalPositions")), int),
    }


def _classic(ds: Dataset, source: str) -> Iterator[FrameRecord]:
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    if orientation is None or position is None or spacing is None:
        return
    temporal = ds.get("TemporalPositionIdentifier", ds.get("TemporalPositionIndex"))
    yield FrameRecord(
        **_common(ds, source),
        frame=None,
        orientation=orientation,
        position=position,  # type: ignore[arg-type]
        pixel_spacing=spacing,  # type: ignore[arg-type]
        slice_thickness=_number(ds.get("SliceThickness")) or 0.0,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        trigger_time=_number(ds.get("TriggerTime")),
        temporal_index=_number(temporal, int),
        instance_number=_number(ds.get("InstanceNumber"), int) or 0,
        slope=_number(ds.get("RescaleSlope")) or 1.0,
        intercept=_number(ds.get("RescaleIntercept")) or 0.0,
    )


def _enhanced(ds: Dataset, source: str) -> Iterator[FrameRecord]:
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    for i, fg in enumerate(ds.get("PerFrameFunctionalGroupsSequence") or (), start=1):
        plane, orient = _group(fg, shared, "PlanePositionSequence"), _group(fg, shared, "PlaneOrientationSequence")
        measures = _group(fg, shared, "PixelMeasuresSequence")
        content, cardiac = (
            _group(fg, shared, "FrameContentSequence"),
            _group(fg, shared, "CardiacSynchronizationSequence"),
        )
        rescale = _group(fg, shared, "PixelValueTransformationSequence")
        orientation = _floats(orient.get("ImageOrientationPatient"), 6) if orient else None
        position = _floats(plane.get("ImagePositionPatient"), 3) if plane else None
        spacing = _floats(measures.get("PixelSpacing"), 2) if measures else None
        if orientation is None or position is None or spacing is None:
            continue
        yield FrameRecord(
            **_common(ds, source),
            frame=i,
            orientation=orientation,
            position=position,  # type: ignore[arg-type]
            pixel_spacing=spacing,  # type: ignore[arg-type]
            slice_thickness=_number(measures.get("SliceThickness")) or 0.0,
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            trigger_time=_number(cardiac.get("NominalCardiacTriggerDelayTime")) if cardiac else None,
            temporal_index=_number(content.get("TemporalPositionIndex"), int) if content else None,
            instance_number=i,
            slope=(_number(rescale.get("RescaleSlope")) if rescale else None) or 1.0,
            intercept=(_number(rescale.get("RescaleIntercept")) if rescale else None) or 0.0,
        )


def frame_records(ds: Dataset, source: str) -> List[FrameRecord]:
    """The 2D frames of one instance that carry a position in the patient (others, e.g. SR or SEG, give none)."""
    if str(ds.get("SOPClassUID", "")) == SEG_STORAGE or "Rows" not in ds:
        return []
    if ds.get("PerFrameFunctionalGroupsSequence") is not None:
        return list(_enhanced(ds, source))
    return list(_classic(ds, source))


def read_header(path: str) -> Optional[Dataset]:
    """A file's DICOM header without pixels; ``None`` for a file that is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError, KeyError):
        return None


def dicom_files(root: str) -> List[str]:
    """Every file under ``root`` (any name, nested folders), sorted; hidden files and folders are left out."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(folder, f) for f in sorted(files) if not f.startswith(".")]
    return found


def pixel_frame(ds: Dataset, record: FrameRecord) -> np.ndarray:
    """The record's 2D frame from a full dataset, in real-world values (rescale applied), float64."""
    pixels = ds.pixel_array
    if record.frame is not None:
        pixels = pixels[record.frame - 1] if pixels.ndim == 3 else pixels
    return pixels.astype(np.float64) * record.slope + record.intercept

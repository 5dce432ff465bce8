"""A cine stack as a 4D SimpleITK image (x, y, slice, phase) with its DICOM geometry, and the record of which
instance (and frame) each (phase, slice) came from, which DICOM SEG export needs to reference them."""

from collections import defaultdict
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.dicom.frames import FrameRecord, pixel_frame
from cmrassist_server.io.dicom.stacks import CineStack

#: Patient and study attributes a derived object (DICOM SEG) copies from its source images.
STUDY_KEYS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)


def cine_array(stack: CineStack, open_dataset: Callable[[str], Dataset]) -> np.ndarray:
    """``(phase, slice, row, column)`` real-world values; each source (file or instance) is opened once.

    Args:
        stack: the checked stack.
        open_dataset: full dataset (with pixels) of a record's ``source``.
    """
    f = stack.first
    out = np.zeros((stack.n_phases, stack.n_slices, f.rows, f.columns), dtype=np.float64)
    where: Dict[str, List] = defaultdict(list)
    for t, phase in enumerate(stack.grid):
        for z, record in enumerate(phase):
            where[record.source].append((t, z, record))
    for source, places in where.items():
        try:
            ds = open_dataset(source)
            for t, z, record in places:
                out[t, z] = pixel_frame(ds, record)
        except (ValueError, AttributeError, NotImplementedError, RuntimeError, OSError) as e:
            raise CMRAssistError(f"{stack.describe()}: cannot read the pixels of {source}: {e}") from None
    return out


def _storage_type(stack: CineStack, array: np.ndarray) -> np.ndarray:
    """int16 when the scanner stored integers without rescale (most MR), float32 otherwise."""
    records = [r for phase in stack.grid for r in phase]
    integral = all(r.slope == 1.0 and float(r.intercept).is_integer() for r in records)
    if integral and array.min() >= np.iinfo(np.int16).min and array.max() <= np.iinfo(np.int16).max:
        return np.round(array).astype(np.int16)
    return array.astype(np.float32)


def cine_image(stack: CineStack, array: np.ndarray) -> sitk.Image:
    """The 4D image: x = along rows (column index), y = down columns, z = stack normal, t = phase (spacing 1)."""
    array = _storage_type(stack, array)
    frames = []
    for t in range(stack.n_phases):
        frame = sitk.GetImageFromArray(array[t])
        frame.SetSpacing(stack.spacing)
        frame.SetOrigin(tuple(float(v) for v in stack.first.position))
        frame.SetDirection(tuple(float(v) for v in stack.direction.ravel()))
        frames.append(frame)
    return sitk.JoinSeries(frames)


def stack_info(stack: CineStack, header: Dataset) -> Dict[str, Any]:
    """Image info of the cine: patient, UIDs, trigger times, heart rate, height and weight where present."""
    f = stack.first
    info: Dict[str, Any] = {
        "patient": str(header.get("PatientID", "")) or "anonymous",
        "study_instance_uid": f.study,
        "series_instance_uids": list(stack.series),
        "series_description": f.series_description,
        "frame_of_reference_uid": f.frame_of_reference,
        "n_frames": stack.n_phases,
        "n_slices": stack.n_slices,
        "trigger_times_ms": stack.trigger_times(),
        "source": "DICOM",
    }
    for key, name in (("StudyDate", "study_date"), ("PatientSex", "sex"), ("PatientAge", "age")):
        if header.get(key):
            info[name] = str(header.get(key))
    rate = _float(header.get("HeartRate"))
    interval = _float(header.get("NominalInterval"))
    if rate:
        info["heart_rate_bpm"] = rate
    elif interval:
        info["heart_rate_bpm"] = round(60000.0 / interval, 1)
    size, weight = _float(header.get("PatientSize")), _float(header.get("PatientWeight"))
    if size:
        info["height_cm"] = round(size * 100.0, 1)  # DICOM Patient's Size is in metres
    if weight:
        info["weight_kg"] = weight
    return info


def _float(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def references(stack: CineStack, header: Dataset) -> Dict[str, Any]:
    """What a DICOM SEG of this cine must reference and copy: the source instance (and frame) of every
    ``[phase][slice]``, the frame of reference, the patient and study attributes."""
    study = {k: str(header.get(k)) for k in STUDY_KEYS if header.get(k) not in (None, "")}
    return {
        "study": study,
        "frame_of_reference_uid": stack.first.frame_of_reference,
        "grid": [[_ref(r) for r in phase] for phase in stack.grid],
    }


def _ref(r: FrameRecord) -> Dict[str, Any]:
    out: Dict[str, Any] = {"sop_class": r.sop_class, "sop_instance": r.sop_instance, "series": r.series}
    if r.frame is not None:
        out["frame"] = r.frame
    return out

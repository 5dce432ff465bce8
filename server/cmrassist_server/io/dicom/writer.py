"""Realistic short-axis cine DICOM written from a 4D image (phantoms, ACDC), in the three layouts scanners export:
one series per slice location (Siemens/GE/Philips default), one series with every slice and phase, and one enhanced
MR multi-frame instance; plus localiser and long-axis series. Tests and benchmarks use it; files get random names
in nested folders so that nothing can rely on their order."""

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
LAYOUTS = ("series_per_slice", "single_series", "enhanced")


def ds_values(values: Sequence[float]) -> List[str]:
    """Decimal strings that fit DICOM's 16 characters, with as many digits as fit."""
    return [format_number_as_ds(float(v)) for v in values]


def study_header(
    rng: np.random.Generator, *, patient_id: str, height_cm: Optional[float] = None, weight_kg: Optional[float] = None
) -> Dataset:
    """Patient and study attributes shared by every series of one synthetic study."""
    ds = Dataset()
    ds.PatientName = f"Phantom^{patient_id}"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = str(rng.choice(["M", "F"]))
    if height_cm:
        ds.PatientSize = format_number_as_ds(float(height_cm) / 100.0)
    if weight_kg:
        ds.PatientWeight = format_number_as_ds(float(weight_kg))
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
    ds.AccessionNumber, ds.ReferringPhysicianName = f"ACC{patient_id}"[:16], ""
    ds.StudyDescription = "Cardiac MRI"
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality, ds.Manufacturer, ds.MagneticFieldStrength = "MR", "CMRAssist synthetic", "1.5"
    return ds


def _file(ds: Dataset, sop_class: str) -> Dataset:
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.is_little_endian, ds.is_implicit_VR = True, False
    return ds


def _storage(array: np.ndarray):
    """Stored integers and the rescale that gives the real values back (exact for integer images)."""
    whole = np.issubdtype(array.dtype, np.integer) or bool(np.all(array == np.round(array)))
    if whole and array.min() >= -32768 and array.max() <= 32767:
        return array.astype(np.int16), 1.0, 0.0
    lo, hi = float(array.min()), float(array.max())
    slope = (hi - lo) / 60000.0 or 1.0
    return np.round((array - lo) / slope).astype(np.uint16), slope, lo


def _pixels(ds: Dataset, stored: np.ndarray) -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[-2]), int(stored.shape[-1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def _save(ds: Dataset, folder: str, rng: np.random.Generator) -> str:
    sub = os.path.join(folder, "DICOM", "".join(rng.choice(list("ABCDEFGH"), 2)))
    os.makedirs(sub, exist_ok=True)
    path = os.path.join(sub, "IM" + "".join(rng.choice(list("0123456789abcdef"), 12)))
    pydicom.dcmwrite(path, ds, write_like_original=False)
    return path


def _geometry(image: sitk.Image) -> Dict[str, Any]:
    d = np.asarray(image.GetDirection()).reshape(image.GetDimension(), image.GetDimension())[:3, :3]
    sx, sy, sz = image.GetSpacing()[:3]
    return {
        "origin": np.asarray(image.GetOrigin()[:3]),
        "x": d[:, 0],
        "y": d[:, 1],
        "z": d[:, 2],
        "spacing": (sx, sy, sz),
    }


def _classic_frame(header: Dataset, g: Dict, z: int, t: int, n_phases: int, trigger_ms: float, rr_ms: float) -> Dataset:
    ds = Dataset()
    ds.update(header)
    position = g["origin"] + z * g["spacing"][2] * g["z"]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.ImagePositionPatient = ds_values(position)
    ds.ImageOrientationPatient = ds_values([*g["x"], *g["y"]])
    ds.PixelSpacing = ds_values([g["spacing"][1], g["spacing"][0]])  # row spacing (y), column spacing (x)
    ds.SliceThickness = format_number_as_ds(float(g["spacing"][2]))
    ds.SpacingBetweenSlices = format_number_as_ds(float(g["spacing"][2]))
    ds.SliceLocation = format_number_as_ds(float(np.dot(position, np.cross(g["x"], g["y"]))))
    ds.TriggerTime = format_number_as_ds(float(trigger_ms))
    ds.NominalInterval = str(int(round(rr_ms)))
    ds.HeartRate = str(int(round(60000.0 / rr_ms)))
    ds.CardiacNumberOfImages = n_phases
    ds.TemporalPositionIdentifier = t + 1
    ds.NumberOfTemporalPositions = n_phases
    ds.MRAcquisitionType, ds.ScanningSequence, ds.SequenceVariant = "2D", "GR", "SS"
    ds.ProtocolName = "cine_bSSFP_sax"
    return ds


def write_cine(
    cine: sitk.Image,
    folder: str,
    *,
    layout: str,
    header: Dataset,
    rng: np.random.Generator,
    rr_ms: float = 900.0,
    series_number: int = 10,
    description: str = "cine_sax",
) -> List[str]:
    """Write the 4D ``cine`` (x, y, slice, phase) as DICOM in ``layout``; returns the files written.

    Args:
        cine: the cine image (integer images are stored exactly; float ones with a rescale slope).
        folder: where the files go (random names in nested folders).
        layout: ``series_per_slice``, ``single_series`` or ``enhanced``.
        header: the study's patient and study attributes (:func:`study_header`).
        rng: random generator (file names, per-slice heart-rate jitter).
        rr_ms: RR interval; phase t has trigger time t * rr / phases.
        series_number: the (first) series number.
        description: series description.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {LAYOUTS}")
    array = sitk.GetArrayFromImage(cine)  # (phase, slice, row, column)
    stored, slope, intercept = _storage(array)
    g = _geometry(cine)
    if layout == "enhanced":
        return [_write_enhanced(header, g, stored, slope, intercept, folder, rng, rr_ms, series_number, description)]
    n_phases, n_slices = stored.shape[:2]
    series = [generate_uid() for _ in range(n_slices)] if layout == "series_per_slice" else [generate_uid()]
    paths = []
    for z in range(n_slices):
        # One breath-hold per slice in the one-series-per-slice export: each has its own RR interval.
        rr = rr_ms * (1 + 0.02 * rng.standard_normal()) if layout == "series_per_slice" else rr_ms
        for t in range(n_phases):
            ds = _classic_frame(header, g, z, t, n_phases, t * rr / n_phases, rr)
            one = layout == "series_per_slice"
            ds.SeriesInstanceUID = series[z if one else 0]
            ds.SeriesNumber = series_number + (z if one else 0)
            ds.SeriesDescription = f"{description}_{z + 1}" if one else description
            ds.InstanceNumber = t + 1 if one else z * n_phases + t + 1
            ds.RescaleSlope, ds.RescaleIntercept = (
                format_number_as_ds(float(slope)),
                format_number_as_ds(float(intercept)),
            )
            ds.RescaleType = "US"
            _pixels(ds, stored[t, z])
            paths.append(_save(_file(ds, MR_STORAGE), folder, rng))
    return paths


def _frame_group(position, t: int, z: int, trigger_ms: float) -> Dataset:
    fg = Dataset()
    plane = Dataset()
    plane.ImagePositionPatient = ds_values(position)
    fg.PlanePositionSequence = DicomSequence([plane])
    content = Dataset()
    content.StackID, content.InStackPositionNumber, content.TemporalPositionIndex = "1", z + 1, t + 1
    content.DimensionIndexValues = [1, z + 1, t + 1]
    fg.FrameContentSequence = DicomSequence([content])
    cardiac = Dataset()
    cardiac.NominalCardiacTriggerDelayTime = float(trigger_ms)
    fg.CardiacSynchronizationSequence = DicomSequence([cardiac])
    return fg


def _write_enhanced(header, g, stored, slope, intercept, folder, rng, rr_ms, series_number, description) -> str:
    n_phases, n_slices = stored.shape[:2]
    ds = Dataset()
    ds.update(header)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = generate_uid(), series_number, description
    ds.InstanceNumber, ds.NumberOfFrames = 1, n_phases * n_slices
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = "20260101", "120000", "20260101120000"
    shared = Dataset()
    measures, orient, rescale = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing = ds_values([g["spacing"][1], g["spacing"][0]])
    measures.SliceThickness = format_number_as_ds(float(g["spacing"][2]))
    orient.ImageOrientationPatient = ds_values([*g["x"], *g["y"]])
    rescale.RescaleSlope, rescale.RescaleIntercept = (
        format_number_as_ds(float(slope)),
        format_number_as_ds(float(intercept)),
    )
    rescale.RescaleType = "US"
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([orient])
    shared.PixelValueTransformationSequence = DicomSequence([rescale])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    groups, frames = [], []
    for z in range(n_slices):  # slice-major frame order, as many scanners write it
        for t in range(n_phases):
            position = g["origin"] + z * g["spacing"][2] * g["z"]
            groups.append(_frame_group(position, t, z, t * rr_ms / n_phases))
            frames.append(stored[t, z])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(groups)
    ds.HeartRate = str(int(round(60000.0 / rr_ms)))
    _pixels(ds, np.stack(frames))
    return _save(_file(ds, ENHANCED_MR), folder, rng)


def write_other_series(folder: str, *, header: Dataset, like: sitk.Image, rng: np.random.Generator) -> List[str]:
    """A three-plane localiser and a four-chamber long-axis cine of the same study (what import must skip)."""
    g = _geometry(like)
    frame = sitk.GetArrayFromImage(like)[0, 0]
    stored, _, _ = _storage(frame)
    planes = [(g["x"], g["y"]), (g["x"], g["z"]), (g["y"], g["z"])]
    paths, localiser = [], generate_uid()
    for i, (x, y) in enumerate(planes):
        ds = _classic_frame(header, {**g, "x": x, "y": y}, 0, 0, 1, 0.0, 900.0)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER", "NONE"]
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = localiser, 1, "localizer"
        ds.InstanceNumber = i + 1
        _pixels(ds, stored)
        paths.append(_save(_file(ds, MR_STORAGE), folder, rng))
    long_axis, n = generate_uid(), 8
    for t in range(n):
        ds = _classic_frame(header, {**g, "x": g["x"], "y": g["z"]}, 0, t, n, t * 900.0 / n, 900.0)
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = long_axis, 2, "cine_4ch"
        ds.InstanceNumber = t + 1
        _pixels(ds, stored)
        paths.append(_save(_file(ds, MR_STORAGE), folder, rng))
    return paths

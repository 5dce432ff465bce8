"""DICOM SEG of a cine's label: one SEG instance per labelled cardiac phase, all in one new series, each frame
referencing the exact source instance (and frame, for enhanced MR) of its slice and phase; segments coded as the
Slicer module codes them (``CMRAssistCore.labels.TERMINOLOGY``), annotator as content creator, annotator and
expertise in the series description.

Why not highdicom's ``Segmentation`` constructor: it takes source images of one series only, and of a multi-frame
source it wants a label for every frame, so it cannot write a per-phase SEG of the one-series-per-slice export or
of an enhanced cine. highdicom builds the segment descriptions here and reads the result back in the tests.
"""

import datetime
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixel_data_handlers.numpy_handler import pack_bits
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.dicom.frames import SEG_STORAGE
from cmrassist_server.io.dicom.writer import ds_values
from CMRAssistCore.labels import COLOURS, SEGMENT_NAMES, TERMINOLOGY

CREATOR = re.compile(r"label: (?P<annotator>.*) \((?P<expertise>[^()]*)\)$")


def _code(text: str) -> hd.sr.CodedConcept:
    scheme, value, meaning = text.split("^")
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def terminology_codes(value: int) -> Tuple[hd.sr.CodedConcept, hd.sr.CodedConcept, hd.sr.CodedConcept]:
    """(category, type, anatomic region) of a label value, from the module's serialised terminology entry."""
    parts = TERMINOLOGY[value].split("~")
    return _code(parts[1]), _code(parts[2]), _code(parts[5])


def _cielab(rgb: Tuple[float, float, float]) -> List[int]:
    """sRGB (0-1) -> DICOM's scaled CIELab (D65), as Slicer writes recommended display colours."""
    c = np.asarray(rgb, dtype=float)
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lab = (116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2]))
    return list(
        hd.color.CIELabColor(
            *(float(np.clip(v, lo, hi)) for v, lo, hi in zip(lab, (0, -128, -128), (100, 127, 127)))
        ).value
    )


def segment_description(number: int, value: int, automatic: bool) -> Dataset:
    """One segment coded as in the module's terminology, with its display colour."""
    category, kind, region = terminology_codes(value)
    algorithm = None
    if automatic:
        algorithm = hd.AlgorithmIdentificationSequence(
            name="CMRAssist segmentation", family=codes.cid7162.ArtificialIntelligence, version="0.1.0"
        )
    item = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=SEGMENT_NAMES[value],
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type="AUTOMATIC" if automatic else "MANUAL",
        algorithm_identification=algorithm,
        tracking_uid=generate_uid(),
        tracking_id=SEGMENT_NAMES[value],
        anatomic_regions=[region],
    )
    item.RecommendedDisplayCIELabValue = _cielab(COLOURS[value])
    return item


def _header(refs: Dict[str, Any], series_uid: str, series_number: int, description: str, creator: str) -> Dataset:
    ds = Dataset()
    for key, value in refs["study"].items():
        if key not in ("PatientSize", "PatientWeight", "PatientAge", "StudyDescription"):
            setattr(ds, key, value)
    now = datetime.datetime.now()
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "SEG", series_uid, series_number
    ds.SeriesDescription = description[:64]
    ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = refs["frame_of_reference_uid"], ""
    ds.Manufacturer, ds.ManufacturerModelName = "CMRAssist", "CMRAssist"
    ds.DeviceSerialNumber, ds.SoftwareVersions = "1", "0.1.0"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentLabel, ds.ContentCreatorName = "CMRASSIST", creator
    ds.SegmentationType, ds.SegmentsOverlap, ds.LossyImageCompression = "BINARY", "NO", "00"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.SOPClassUID, ds.SOPInstanceUID = SEG_STORAGE, generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SEG_STORAGE, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta, ds.is_little_endian, ds.is_implicit_VR = meta, True, False
    ds.preamble = b"\x00" * 128  # a Part 10 file however it is written (STOW clients write "like original")
    return ds


def _geometry_groups(ds: Dataset, image: sitk.Image) -> None:
    """Shared functional groups (pixel measures, orientation) and the dimension index (segment, position)."""
    d = np.asarray(image.GetDirection()).reshape(image.GetDimension(), -1)[:3, :3]
    sx, sy, sz = image.GetSpacing()[:3]
    shared, measures, orient = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing = ds_values([sy, sx])
    measures.SliceThickness = measures.SpacingBetweenSlices = ds_values([sz])[0]
    orient.ImageOrientationPatient = ds_values([*d[:, 0], *d[:, 1]])
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = DicomSequence([measures]), DicomSequence([orient])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    organisation = generate_uid()
    organisation_item = Dataset()
    organisation_item.DimensionOrganizationUID = organisation
    ds.DimensionOrganizationSequence = DicomSequence([organisation_item])
    index = []
    for pointer, group, text in ((0x0062000B, 0x0062000A, "Segment Number"), (0x00200032, 0x00209113, "Position")):
        item = Dataset()
        item.DimensionOrganizationUID, item.DimensionIndexPointer = organisation, pointer
        item.FunctionalGroupPointer, item.DimensionDescriptionLabel = group, text
        index.append(item)
    ds.DimensionIndexSequence = DicomSequence(index)


def _frame_group(segment: int, z: int, position, ref: Dict[str, Any]) -> Dataset:
    source = Dataset()
    source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID = ref["sop_class"], ref["sop_instance"]
    if ref.get("frame"):
        source.ReferencedFrameNumber = ref["frame"]
    source.SpatialLocationsPreserved = "YES"  # the label lies on the source grid
    purpose = hd.sr.CodedConcept(
        value="121322", scheme_designator="DCM", meaning="Source image for image processing operation"
    )
    source.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
    derivation = Dataset()
    derivation.SourceImageSequence = DicomSequence([source])
    derivation.DerivationCodeSequence = DicomSequence(
        [hd.sr.CodedConcept(value="113076", scheme_designator="DCM", meaning="Segmentation")]
    )
    fg, content, plane, ident = Dataset(), Dataset(), Dataset(), Dataset()
    fg.DerivationImageSequence = DicomSequence([derivation])
    content.DimensionIndexValues = [segment, z + 1]
    plane.ImagePositionPatient = ds_values(position)
    ident.ReferencedSegmentNumber = segment
    fg.FrameContentSequence, fg.PlanePositionSequence = DicomSequence([content]), DicomSequence([plane])
    fg.SegmentIdentificationSequence = DicomSequence([ident])
    return fg


def _referenced_series(refs_of_phase: Sequence[Dict[str, Any]]) -> DicomSequence:
    by_series: Dict[str, Dict[str, str]] = {}
    for ref in refs_of_phase:
        by_series.setdefault(ref["series"], {})[ref["sop_instance"]] = ref["sop_class"]
    items = []
    for series, instances in sorted(by_series.items()):
        item = Dataset()
        item.SeriesInstanceUID = series
        item.ReferencedInstanceSequence = DicomSequence(
            [_instance(sop_class, uid) for uid, sop_class in sorted(instances.items())]
        )
        items.append(item)
    return DicomSequence(items)


def _instance(sop_class: str, uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, uid
    return item


def write_seg(
    label: np.ndarray,
    image: sitk.Image,
    refs: Dict[str, Any],
    *,
    phases: Sequence[int],
    annotator: str,
    expertise: str = "",
    tag: str = "final",
    automatic: bool = False,
    series_number: int = 300,
) -> List[Dataset]:
    """DICOM SEG instances (one per phase that holds a label, one new series) of a label on ``image``'s grid.

    Args:
        label: ``(z, y, x)`` for one phase, or ``(t, z, y, x)`` for several (values 0-3).
        image: the labelled image (its geometry places the frames).
        refs: the cine's DICOM references (``importer.references``).
        phases: the cine phase (0-based) of each label frame.
        annotator: who made the label (content creator).
        expertise: recorded with the annotator in the series description.
        tag: the label's tag (``final``, ``original``, ...).
        automatic: a model's label (algorithm identification) rather than a person's.
        series_number: series number of the SEG series.
    """
    frames = label[None] if label.ndim == 3 else label
    grid = refs["grid"]
    if len(frames) != len(phases) or any(not 0 <= t < len(grid) for t in phases):
        raise CMRAssistError(f"label has {len(frames)} frames for phases {list(phases)} of a {len(grid)}-phase cine")
    if frames.shape[1] != len(grid[0]):
        raise CMRAssistError(f"label has {frames.shape[1]} slices, its DICOM source {len(grid[0])}", 409)
    series_uid = generate_uid()
    creator = re.sub(r"[\\^=]", " ", annotator or "unknown")[:64]
    description = f"CMRAssist {tag} label: {annotator} ({expertise or 'expertise not given'})"
    out = []
    for t, array in zip(phases, frames):
        if not array.any():
            continue
        ds = _header(refs, series_uid, series_number, description, creator)
        ds.InstanceNumber = len(out) + 1
        ds.ContentDescription = f"{tag} label, cardiac phase {t + 1} of {len(grid)}"[:64]
        _fill_frames(ds, array, image, grid[t], automatic)
        ds.ReferencedSeriesSequence = _referenced_series(grid[t])
        out.append(ds)
    if not out:
        raise CMRAssistError("the label is empty: there is nothing to export as DICOM SEG", 422)
    return out


def _fill_frames(ds: Dataset, array: np.ndarray, image: sitk.Image, refs_of_phase: List[Dict], automatic: bool) -> None:
    d = np.asarray(image.GetDirection()).reshape(image.GetDimension(), -1)[:3, :3]
    origin, sz = np.asarray(image.GetOrigin()[:3]), image.GetSpacing()[2]
    values = [v for v in sorted(SEGMENT_NAMES) if (array == v).any()]
    ds.SegmentSequence = DicomSequence([segment_description(n, v, automatic) for n, v in enumerate(values, start=1)])
    _geometry_groups(ds, image)
    masks, groups = [], []
    for number, value in enumerate(values, start=1):
        for z in range(array.shape[0]):
            mask = array[z] == value
            if mask.any():
                masks.append(mask)
                groups.append(_frame_group(number, z, origin + z * sz * d[:, 2], refs_of_phase[z]))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(groups)
    ds.NumberOfFrames, ds.Rows, ds.Columns = len(masks), int(array.shape[1]), int(array.shape[2])
    ds.PixelData = pack_bits(np.stack(masks).astype(np.uint8).ravel())


def segment_value(item: Dataset) -> int:
    """Our label value of a SEG segment, from its codes (else its label)."""
    kind = item.SegmentedPropertyTypeCodeSequence[0]
    regions = item.get("AnatomicRegionSequence") or []
    for value in SEGMENT_NAMES:
        _, want_kind, want_region = terminology_codes(value)
        same_kind = (kind.CodeValue, kind.CodingSchemeDesignator) == (want_kind.value, want_kind.scheme_designator)
        if same_kind and any(r.CodeValue == want_region.value for r in regions):
            return value
    for value, name in SEGMENT_NAMES.items():
        if str(item.get("SegmentLabel", "")).strip().lower() == name.lower():
            return value
    raise CMRAssistError(
        f"SEG segment {item.get('SegmentLabel', '?')!r} is not an RV cavity, LV myocardium or LV cavity"
    )


def read_seg(datasets: Sequence[Dataset], refs: Dict[str, Any]) -> Tuple[Dict[int, np.ndarray], Dict[str, str]]:
    """Label per cine phase (``{t: (z, y, x) uint8}``) from SEG instances, placed by the instances they reference;
    and the annotator and expertise recorded in them."""
    grid = refs["grid"]
    where = {
        (r["sop_instance"], int(r.get("frame") or 0)): (t, z) for t, ph in enumerate(grid) for z, r in enumerate(ph)
    }
    labels: Dict[int, np.ndarray] = {}
    info: Dict[str, str] = {}
    for ds in datasets:
        values = {int(item.SegmentNumber): segment_value(item) for item in ds.SegmentSequence}
        pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
        for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
            source = fg.DerivationImageSequence[0].SourceImageSequence[0]
            key = (str(source.ReferencedSOPInstanceUID), int(source.get("ReferencedFrameNumber") or 0))
            if key not in where:
                raise CMRAssistError(f"SEG {ds.SOPInstanceUID} references an instance that is not part of this cine")
            t, z = where[key]
            label = labels.setdefault(t, np.zeros((len(grid[0]), int(ds.Rows), int(ds.Columns)), np.uint8))
            label[z][pixels[i] > 0] = values[int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)]
        match = CREATOR.search(str(ds.get("SeriesDescription", "")))
        info = {
            "annotator": str(ds.get("ContentCreatorName", "")) or "unknown",
            "source": "DICOM SEG",
            "seg_series_instance_uid": str(ds.SeriesInstanceUID),
        }
        if match and match.group("expertise") != "expertise not given":
            info["expertise"] = match.group("expertise")
    return labels, info


def phase_of(info: Dict[str, Any]) -> Optional[int]:
    """The 0-based cine phase of a frame study (``frame`` counts from 1), ``None`` for the cine itself."""
    frame = info.get("frame")
    return int(frame) - 1 if frame not in (None, "") else None

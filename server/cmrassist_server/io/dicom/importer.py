"""``cmrassist import-dicom``: a folder of DICOM files (any names, any order, nested, several studies and series)
-> a MONAI Label studies folder with each short-axis cine, its ED frame and (once known) its ES frame as studies.

Everything is checked before anything is written: a refused cine leaves the destination untouched. The DICOMweb
datastore writes the cines it fetches with the same :func:`write_cine_studies`.
"""

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from cmrassist_server.core.checkpoints import atomic_write_json
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import extract_frame
from cmrassist_server.io.dicom.frames import FrameRecord, dicom_files, frame_records, read_header
from cmrassist_server.io.dicom.stacks import CineStack, SkippedSeries, find_cines
from cmrassist_server.io.dicom.volume import cine_array, cine_image, references, stack_info
from cmrassist_server.io.studies import StudiesWriter
from CMRAssistCore.labels import LV_CAVITY

#: ``phases(cine) -> (ed_index, es_index, lv_volumes_ml)`` from a segmentation model (0-based indices); ``None``
#: while there is no model.
PhaseFinder = Callable[[sitk.Image], Optional[Tuple[int, int, List[float]]]]


@dataclass
class ScannedFolder:
    """What a folder holds: frame records, one header per series, the cines and the series left out."""

    files: int = 0
    not_dicom: List[str] = field(default_factory=list)
    records: List[FrameRecord] = field(default_factory=list)
    headers: Dict[str, Dataset] = field(default_factory=dict)
    stacks: List[CineStack] = field(default_factory=list)
    skipped: List[SkippedSeries] = field(default_factory=list)


def scan_folder(src: str) -> ScannedFolder:
    """Read every file's header (no pixels) and find the cines; refusals raise :class:`CMRAssistError`."""
    if not os.path.isdir(src):
        raise CMRAssistError(f"{src} is not a folder")
    scanned = ScannedFolder()
    for path in dicom_files(src):
        scanned.files += 1
        ds = read_header(path)
        records = frame_records(ds, path) if ds is not None else []
        if ds is None:
            scanned.not_dicom.append(os.path.relpath(path, src))
        elif records:
            scanned.headers.setdefault(records[0].series, ds)
            scanned.records += records
    if not scanned.records:
        raise CMRAssistError(f"{src} holds no DICOM images ({scanned.files} files, {len(scanned.not_dicom)} not DICOM)")
    scanned.stacks, scanned.skipped = find_cines(scanned.records)
    if not scanned.stacks:
        left = "; ".join(s.line() for s in scanned.skipped) or "none"
        raise CMRAssistError(f"{src} holds no short-axis cine (series left out: {left})")
    return scanned


def cine_base_id(header: Dataset, stack: CineStack) -> str:
    """``<patient id>_<8 hex>``: the same cine gets the same id from a folder and from a PACS."""
    patient = re.sub(r"[^A-Za-z0-9_-]+", "_", str(header.get("PatientID", "")) or "anonymous").strip("_-")[:40]
    digest = hashlib.sha1("|".join((stack.first.study, *stack.series)).encode()).hexdigest()[:8]
    return f"{patient or 'anonymous'}_{digest}"


def references_path(studies: str, cine_id: str) -> str:
    """Where the DICOM references of a cine live (what SEG export needs)."""
    return os.path.join(studies, ".cmrassist", "dicom", cine_id + ".json")


def load_references(studies: str, cine_id: str) -> Dict[str, Any]:
    path = references_path(studies, cine_id)
    if not os.path.isfile(path):
        raise CMRAssistError(f"{cine_id!r} was not imported from DICOM: no source instances to reference", 409)
    with open(path) as f:
        return json.load(f)


def write_cine_studies(
    writer: StudiesWriter,
    base_id: str,
    cine: sitk.Image,
    info: Dict[str, Any],
    refs: Dict[str, Any],
    phases: Optional[PhaseFinder] = None,
) -> List[str]:
    """Add ``<base>_cine``, ``<base>_ed`` and, when a model gives it, ``<base>_es``; returns the ids written.

    ED is the first phase, or the largest LV volume when a model is at hand; ES is the smallest LV volume with a
    model, else left for the user (no ES study).
    """
    cine_id = f"{base_id}_cine"
    ed, es, method, volumes = 0, None, "first phase", None
    found = phases(cine) if phases is not None else None
    if found is not None:
        ed, es, volumes = found
        method = "segmentation model: largest and smallest LV cavity volume"
    info = {**info, "phase": "CINE", "ed_frame": ed + 1, "phase_method": method}
    if es is not None:
        info["es_frame"] = es + 1
    if volumes is not None:
        info["lv_volumes_ml"] = [round(float(v), 2) for v in volumes]
    atomic_write_json(references_path(writer.folder, cine_id), {**refs, "image": cine_id})
    written = [writer.add_image(cine_id, cine, info)]
    frame_keys = (
        "patient",
        "study_instance_uid",
        "series_instance_uids",
        "ed_frame",
        "es_frame",
        "n_frames",
        "heart_rate_bpm",
        "height_cm",
        "weight_kg",
        "sex",
        "age",
        "source",
        "phase_method",
    )
    common = {k: info[k] for k in frame_keys if k in info}
    for phase, index in (("ED", ed), ("ES", es)):
        if index is not None:
            frame_info = {**common, "phase": phase, "frame": index + 1, "source_image": cine_id}
            if info["trigger_times_ms"][index] is not None:
                frame_info["trigger_time_ms"] = info["trigger_times_ms"][index]
            written.append(writer.add_image(f"{base_id}_{phase.lower()}", extract_frame(cine, index), frame_info))
    return written


def existing_ids(dst: str) -> List[str]:
    """Image ids already in a studies folder (none when it does not exist yet)."""
    if not os.path.isfile(os.path.join(dst, "datastore_v2.json")):
        return []
    return StudiesWriter(dst).datastore.list_images()


def import_dicom(
    src: str,
    dst: str,
    *,
    phases: Optional[PhaseFinder] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, Any]:
    """Import every short-axis cine under ``src`` into the studies folder ``dst``.

    Args:
        src: folder of DICOM files.
        dst: MONAI Label studies folder (created when missing).
        phases: ED/ES finder from a segmentation model; without it ED is the first phase and ES is left open.
        progress: ``progress(done, total)`` per cine.

    Returns:
        the ids written, cines already present (skipped), series left out (with why) and files that are not DICOM.
    """
    start = time.time()
    scanned = scan_folder(src)  # every header check happens here, before anything is written
    existing = set(existing_ids(dst))
    planned = [(cine_base_id(scanned.headers[s.first.series], s), s) for s in scanned.stacks]
    todo = [(b, s) for b, s in planned if f"{b}_cine" not in existing]
    written = _write_all(dst, scanned, todo, phases, progress)
    return {
        "images": written,
        "cines": len(todo),
        "already_imported": [f"{b}_cine" for b, _ in planned if f"{b}_cine" in existing],
        "skipped": [s.line() for s in scanned.skipped],
        "not_dicom": scanned.not_dicom,
        "files": scanned.files,
        "seconds": round(time.time() - start, 2),
    }


def _write_all(dst: str, scanned: ScannedFolder, todo: List, phases: Optional[PhaseFinder], progress) -> List[str]:
    """One cine at a time (memory stays one cine); if a later cine fails (unreadable pixels), what this import
    added is removed again, and a destination it created is removed whole."""
    if not todo:
        return []
    created = not os.path.exists(dst)
    writer = StudiesWriter(dst)
    written: List[str] = []
    try:
        for i, (base, stack) in enumerate(todo):
            header = scanned.headers[stack.first.series]
            image = cine_image(stack, cine_array(stack, pydicom.dcmread))
            refs = references(stack, header)
            written += write_cine_studies(writer, base, image, stack_info(stack, header), refs, phases)
            if progress:
                progress(i + 1, len(todo))
    except BaseException:
        if created:
            shutil.rmtree(dst, ignore_errors=True)
        else:
            for image_id in written:
                writer.datastore.remove_image(image_id)
            for base, _ in todo:
                path = references_path(dst, f"{base}_cine")
                if os.path.isfile(path):
                    os.remove(path)
        raise
    return written


def lv_volume_phases(labels: np.ndarray, spacing: Tuple[float, float, float]) -> Tuple[int, int, List[float]]:
    """ED = largest, ES = smallest LV cavity volume of a ``(t, z, y, x)`` label, volumes in ml."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    volumes = [float((frame == LV_CAVITY).sum()) * voxel_ml for frame in labels]
    return int(np.argmax(volumes)), int(np.argmin(volumes)), volumes

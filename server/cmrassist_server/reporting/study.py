"""What a study report is made of: the subject's segmented ED and ES frames (their own studies' labels, else the
cine's 4D label at its ED/ES frames) and the volume-time curve over the cine's 4D label when there is one."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import extract_frame, read_image
from cmrassist_server.qc.store import sibling_ids
from CMRAssistCore.measures import class_volumes_ml

#: Which label of a study the report reads: a person's final label first, then propagated, then the model's.
LABEL_ORDER = ("final", "propagated", "original")


@dataclass
class Phase:
    """One segmented cardiac phase: its 3D image and label ``(z, y, x)`` and where they came from."""

    name: str
    image_id: str
    frame: Optional[int]
    image: sitk.Image
    label: np.ndarray
    tag: str
    label_info: Dict[str, Any]


@dataclass
class StudyData:
    image_id: str
    info: Dict[str, Any]
    ed: Phase
    es: Phase
    es_method: str
    curve: Optional[Dict[str, List[float]]]


def stored_label(datastore, image_id: str) -> Optional[Tuple[str, str, Dict[str, Any]]]:
    """``(tag, path, info)`` of the label the report reads for ``image_id``, ``None`` without one."""
    tags = datastore.get_labels_by_image_id(image_id) or {}
    for tag in LABEL_ORDER:
        if tag in tags:
            return tag, datastore.get_label_uri(image_id, tag), dict(datastore.get_label_info(image_id, tag) or {})
    return None


def _frame_number(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _subject(datastore, image_id: str, info: Dict, is_cine: bool) -> Tuple[Optional[str], Dict[str, str]]:
    """The subject's cine id (if any) and its 3D frame studies by phase (``ED``/``ES``)."""
    known = set(datastore.list_images())
    cine_id = image_id if is_cine else info.get("source_image") if info.get("source_image") in known else None
    infos = {i: datastore.get_image_info(i) or {} for i in known}
    if cine_id:
        members = [i for i, inf in infos.items() if inf.get("source_image") == cine_id]
    else:
        members = [image_id, *sibling_ids(image_id, info, infos.items())]
    by_phase = {}
    for i in members:
        phase = str(infos[i].get("phase", "")).upper()
        if phase in ("ED", "ES") and (phase not in by_phase or stored_label(datastore, i)):
            by_phase[phase] = i
    return cine_id, by_phase


def _from_frame_study(datastore, name: str, image_id: str) -> Optional[Phase]:
    found = stored_label(datastore, image_id)
    if found is None:
        return None
    tag, path, label_info = found
    image = read_image(datastore.get_image_uri(image_id))
    label = sitk.GetArrayFromImage(read_image(path)).astype(np.uint8)
    frame = _frame_number((datastore.get_image_info(image_id) or {}).get("frame"))
    return Phase(name, image_id, frame, image, label, tag, label_info)


def study_data(datastore, image_id: str) -> StudyData:
    """The segmented ED and ES phases of the subject of ``image_id`` (a cine, or one of its frames).

    Raises:
        CMRAssistError: 409 when the ED or ES phase has no label yet.
    """
    info = dict(datastore.get_image_info(image_id) or {})
    image = read_image(datastore.get_image_uri(image_id))
    cine_id, frames = _subject(datastore, image_id, info, image.GetDimension() == 4)
    cine_label = stored_label(datastore, cine_id) if cine_id else None
    cine_info = dict(datastore.get_image_info(cine_id) or {}) if cine_id else {}
    merged = {**cine_info, **info}
    labels4d = sitk.GetArrayFromImage(read_image(cine_label[1])).astype(np.uint8) if cine_label else None
    if labels4d is not None and labels4d.ndim != 4:
        labels4d = None  # a 3D label stored on a cine names no frame: the frame studies are used instead
    cine = read_image(datastore.get_image_uri(cine_id)) if labels4d is not None else None
    curve = _curve(labels4d, cine.GetSpacing()[:3]) if labels4d is not None else None
    es_method = "ES frame of the study"
    phases = {}
    for name in ("ED", "ES"):
        phase = _from_frame_study(datastore, name, frames[name]) if name in frames else None
        if phase is None and labels4d is not None:
            frame = _frame_number(merged.get(f"{name.lower()}_frame"))
            if frame is None and name == "ES":
                frame, es_method = int(np.argmin(curve["lv_ml"])) + 1, "smallest LV cavity volume of the cine's label"
            if frame is not None and 1 <= frame <= len(labels4d):
                phase = Phase(
                    name,
                    cine_id,
                    frame,
                    extract_frame(cine, frame - 1),
                    labels4d[frame - 1],
                    cine_label[0],
                    cine_label[2],
                )
        if phase is None:
            raise CMRAssistError(
                f"{image_id!r}: the {name} phase has no label yet: segment and store the {name} frame (or the "
                "whole cine) first",
                409,
            )
        phases[name] = phase
    return StudyData(image_id, merged, phases["ED"], phases["ES"], es_method, curve)


def _curve(labels4d: np.ndarray, spacing_xyz) -> Dict[str, List[float]]:
    """LV and RV cavity volume (ml) of every cine frame."""
    spacing = tuple(reversed([float(s) for s in spacing_xyz]))
    volumes = [class_volumes_ml(frame, spacing) for frame in labels4d]
    return {
        "frame": list(range(1, len(labels4d) + 1)),
        "lv_ml": [v["lv_cavity"] for v in volumes],
        "rv_ml": [v["rv_cavity"] for v in volumes],
    }

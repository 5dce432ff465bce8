"""Where a cohort's studies come from: a MONAI Label studies folder (its ``datastore_v2.json`` gives ids and image
infos), a plain folder of NIfTI/NRRD files, or a DICOMweb server (PACS) whose short-axis cines are first mirrored
into a studies folder by the DICOMweb datastore (``io/dicom/dicomweb.py``); grouped into subjects.

A studies folder is only read: it may be served by a running server at the same time, so nothing here writes into
it (MONAI Label's own ``LocalDatastore`` rewrites its JSON when it opens a folder).
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import is_safe_id

EXTENSIONS = (".nii.gz", ".nii", ".nrrd")
DATASTORE_JSON = "datastore_v2.json"


@dataclass(frozen=True)
class StudyImage:
    """One image of the studies folder: a 3D frame or a 4D cine.

    Args:
        image_id: its id in the studies folder (file name without extension).
        path: the file.
        info: the image info the datastore keeps (patient, phase, ED/ES frame numbers counted from 1, ...).
    """

    image_id: str
    path: str
    info: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Subject:
    """The images of one subject (same ``patient`` info, else one image); ``problem`` says why it cannot run."""

    subject_id: str
    images: Tuple[StudyImage, ...]
    problem: Optional[str] = None

    def stamp(self) -> Dict[str, Any]:
        """What the subject's results depend on in the studies folder: each file's size and modification time."""
        out: Dict[str, Any] = {}
        for image in self.images:
            try:
                st = os.stat(image.path)
                out[image.image_id] = [st.st_size, st.st_mtime_ns]
            except OSError:
                out[image.image_id] = None
        return out


def _strip_extension(name: str) -> Optional[str]:
    for ext in EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return None


def _datastore_images(folder: str) -> List[StudyImage]:
    path = os.path.join(folder, DATASTORE_JSON)
    try:
        with open(path) as f:
            store = json.load(f)
    except (OSError, ValueError) as e:
        raise CMRAssistError(f"{path} cannot be read as a MONAI Label datastore: {e}", 400) from None
    images_dir = os.path.join(folder, store.get("images_dir", "."))
    out = []
    for image_id, obj in sorted((store.get("objects") or {}).items()):
        image = obj.get("image") or {}
        name = (image.get("info") or {}).get("name") or image_id + image.get("ext", ".nii.gz")
        out.append(
            StudyImage(image_id, os.path.normpath(os.path.join(images_dir, name)), dict(image.get("info") or {}))
        )
    return out


def _plain_images(folder: str) -> List[StudyImage]:
    out = []
    for name in sorted(os.listdir(folder)):
        image_id = _strip_extension(name)
        if image_id is not None and not name.startswith(".") and os.path.isfile(os.path.join(folder, name)):
            out.append(StudyImage(image_id, os.path.join(folder, name), {}))
    return out


def is_dicomweb(studies: str) -> bool:
    return studies.startswith(("http://", "https://"))


def mirror_dicomweb(url: str, cache_root: str) -> str:
    """The studies folder the short-axis cines of a DICOMweb server are mirrored into (new ones fetched, the
    cache kept between runs); the same checks and ids as the server's DICOMweb datastore."""
    from cmrassist_server.io.dicom.dicomweb import DicomWebCineDatastore

    return DicomWebCineDatastore(url, cache_root).folder


def list_images(studies: str) -> List[StudyImage]:
    """Every image of a studies folder (with its info from the datastore JSON when present).

    Raises:
        CMRAssistError: a folder that does not exist (404); a URL (mirror it first, 422).
    """
    if is_dicomweb(studies):
        raise CMRAssistError(f"{studies} is a DICOMweb URL: mirror it into a studies folder first", 422)
    if not os.path.isdir(studies):
        raise CMRAssistError(f"studies folder {studies!r} does not exist", 404)
    images = _plain_images(studies)
    if os.path.isfile(os.path.join(studies, DATASTORE_JSON)):
        # Files copied in since the datastore last looked are studies too (the server adds them when it starts).
        listed = _datastore_images(studies)
        known = {image.image_id for image in listed}
        images = sorted(listed + [i for i in images if i.image_id not in known], key=lambda i: i.image_id)
    return images


def subject_id_of(image: StudyImage) -> str:
    """The subject an image belongs to: its ``patient`` info (a DICOM Patient ID may hold any character: those
    that could not be in a file name become ``_``, with a hash of the original against collisions), else its id."""
    patient = str(image.info.get("patient") or "")
    if not patient:
        return image.image_id
    if is_safe_id(patient):
        return patient
    return re.sub(r"[^A-Za-z0-9_\-]", "_", patient)[:100] + "-" + hashlib.sha1(patient.encode()).hexdigest()[:8]


def group_subjects(images: List[StudyImage]) -> List[Subject]:
    """Images grouped by subject (:func:`subject_id_of`), sorted by id; an image id that could name a path
    (not letters, digits, ``_`` and ``-``) makes its subject fail with that reason."""
    groups: Dict[str, List[StudyImage]] = {}
    for image in images:
        groups.setdefault(subject_id_of(image), []).append(image)
    subjects = []
    for subject_id, members in sorted(groups.items()):
        unsafe = [m.image_id for m in members if not is_safe_id(m.image_id)]
        problem = f"image id {unsafe[0]!r} is not usable: use letters, digits, '_' and '-' only" if unsafe else None
        safe_id = (
            subject_id if is_safe_id(subject_id) else f"unusable-{hashlib.sha1(subject_id.encode()).hexdigest()[:12]}"
        )
        subjects.append(Subject(safe_id, tuple(members), problem))
    return subjects


def list_subjects(studies: str) -> List[Subject]:
    """The subjects of a studies folder, sorted by id."""
    return group_subjects(list_images(studies))

"""Where a cohort's studies come from: a MONAI Label studies folder (its ``datastore_v2.json`` gives ids and image
infos) or a plain folder of NIfTI/NRRD files, grouped into subjects.

Read only: the folder may be served by a running server at the same time, so nothing here writes into it (MONAI
Label's own ``LocalDatastore`` rewrites its JSON when it opens a folder). A DICOMweb URL is refused with a clear
message until the DICOMweb datastore (issue 15) lands.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import SAFE_ID

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


def list_images(studies: str) -> List[StudyImage]:
    """Every image of a studies folder (with its info from the datastore JSON when present).

    Raises:
        CMRAssistError: a DICOMweb URL (not supported yet, 422), or a folder that does not exist (404).
    """
    if studies.startswith(("http://", "https://")):
        raise CMRAssistError(
            f"{studies}: DICOMweb sources are not supported yet (they come with the DICOMweb datastore, "
            "issue 15); give a local studies folder",
            422,
        )
    if not os.path.isdir(studies):
        raise CMRAssistError(f"studies folder {studies!r} does not exist", 404)
    images = _plain_images(studies)
    if os.path.isfile(os.path.join(studies, DATASTORE_JSON)):
        # Files copied in since the datastore last looked are studies too (the server adds them when it starts).
        listed = _datastore_images(studies)
        known = {image.image_id for image in listed}
        images = sorted(listed + [i for i in images if i.image_id not in known], key=lambda i: i.image_id)
    return images


def group_subjects(images: List[StudyImage]) -> List[Subject]:
    """Images grouped by their ``patient`` info (an image without one is a subject of its own), sorted by id."""
    groups: Dict[str, List[StudyImage]] = {}
    for image in images:
        groups.setdefault(str(image.info.get("patient") or image.image_id), []).append(image)
    subjects = []
    for subject_id, members in sorted(groups.items()):
        problem = None
        unsafe = [m.image_id for m in members if not SAFE_ID.match(m.image_id)]
        if not SAFE_ID.match(subject_id) or unsafe:
            problem = (
                f"subject {subject_id!r} (images {', '.join(unsafe) or subject_id}) is not a usable id: "
                "use letters, digits, '_' and '-' only"
            )
        subjects.append(Subject(subject_id, tuple(members), problem))
    return subjects


def list_subjects(studies: str) -> List[Subject]:
    """The subjects of a studies folder, sorted by id."""
    return group_subjects(list_images(studies))

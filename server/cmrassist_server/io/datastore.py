"""A MONAI Label local datastore that checks every upload before anything is written."""

import os
import re
import tempfile
from typing import Any, Dict, Optional

from monailabel.datastore.local import LocalDatastore

from cmrassist_server.annotations.versions import LabelVersions
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import SAFE_TAG, check_id
from cmrassist_server.imaging.imageio import check_label, check_study_image, read_image

# Paths MONAI Label's infer endpoint itself writes for uploaded files (tempfile.NamedTemporaryFile in the temp dir).
UPLOAD_TMP = re.compile(r"^tmp[A-Za-z0-9_]+(\.nii(\.gz)?|\.nrrd)$")


def stored_image_id(image: Any, datastore) -> Optional[str]:
    """The datastore id an infer request names, or ``None`` for a file MONAI Label's endpoint uploaded.

    Raises:
        CMRAssistError: 400 for an id that could name a path, 404 for an unknown id.
    """
    if (
        isinstance(image, str)
        and os.path.dirname(image) == tempfile.gettempdir()
        and UPLOAD_TMP.match(os.path.basename(image))
    ):
        return None
    if not isinstance(image, str):
        raise CMRAssistError("the request names no image: give image=ID or upload a file", 400)
    check_id(image)
    datastore.get_image_uri(image)  # 404 for unknown ids
    return image


class CheckedDatastore(LocalDatastore):
    """Local datastore whose uploads are validated first; a refused upload leaves the datastore unchanged.

    Images must be 3D stacks (at least 2 slices) or 4D cines; labels must match their image's grid and hold only
    0-3. Errors become HTTP 4xx with a message saying what is wrong.

    With a version store (``versions``), every ``final`` submission is also kept as its annotator's version;
    once a reviewer has accepted a version (or a consensus), submissions no longer replace ``final``.
    """

    versions: Optional[LabelVersions] = None

    def _known(self, image_id: str) -> None:
        check_id(image_id)
        if image_id not in self._datastore.objects:
            raise CMRAssistError(f"unknown image id {image_id!r}", 404)

    def add_image(self, image_id: str, image_filename: str, image_info: Dict[str, Any]) -> str:
        if not image_id:
            image_id = os.path.basename(image_filename).split(".")[0]
        check_id(image_id)
        if image_id in self._datastore.objects:
            raise CMRAssistError(f"image id {image_id!r} exists already; remove it first", 409)
        check_study_image(read_image(image_filename))
        return super().add_image(image_id, image_filename, image_info)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        self._known(image_id)
        if not label_tag or not SAFE_TAG.match(label_tag):
            raise CMRAssistError(f"invalid label tag {label_tag!r}", 400)
        try:
            check_label(read_image(label_filename), read_image(self.get_image_uri(image_id)))
        except CMRAssistError as e:
            raise CMRAssistError(f"label refused: {e}", e.status) from None
        label_info = dict(label_info or {})
        if label_tag == "final" and self.versions is not None and "accepted_version" not in label_info:
            self._keep_version(image_id, label_filename, label_info)
            if self.versions.accepted(image_id) is not None:
                return image_id  # the reviewed final label stays; this submission is kept as a version
        return super().save_label(image_id, label_filename, label_tag, label_info)

    def _keep_version(self, image_id: str, label_filename: str, label_info: Dict[str, Any]) -> None:
        assert self.versions is not None
        if not self.versions.list(image_id)["versions"]:
            # A label stored before versions existed (e.g. imported expert labels) becomes the first version.
            existing = self._datastore.objects[image_id].labels.get("final")
            path = super().get_label_uri(image_id, "final") if existing else None
            if path and os.path.isfile(path):
                info = dict(existing.info or {})
                info.setdefault("annotator", "original")
                self.versions.add(image_id, path, info, source="imported")
        self.versions.add(
            image_id,
            label_filename,
            label_info if label_info.get("annotator") else {**label_info, "annotator": "unnamed"},
        )

    def get_image_uri(self, image_id: str) -> str:
        self._known(image_id)
        return super().get_image_uri(image_id)

    def get_image_info(self, image_id: str) -> Dict[str, Any]:
        self._known(image_id)
        return super().get_image_info(image_id)

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        self._known(label_id)
        return super().get_label_uri(label_id, label_tag)

    def update_image_info(self, image_id: str, info: Dict[str, Any]) -> None:
        self._known(image_id)
        return super().update_image_info(image_id, info)

    def remove_image(self, image_id: str) -> None:
        self._known(image_id)
        return super().remove_image(image_id)

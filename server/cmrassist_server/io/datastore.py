"""A MONAI Label local datastore that checks every upload before anything is written and loses nothing.

- Uploads are read as untrusted files (``imaging/files.py``) and checked as studies or as labels of their study;
  a refused upload leaves the datastore unchanged.
- Files and the index (``datastore_v2.json``) are written atomically (temporary file, fsync, rename, fsync of the
  folder) under one lock, so concurrent requests and a ``kill -9`` at any moment leave them whole and in step.
  An index damaged by other means is recovered from its start-up copy, or rebuilt from the files.
- ``final`` submissions are kept as their annotator's version (``annotations/versions.py``); once a reviewer has
  accepted a version, submissions no longer replace ``final``. Provenance keys are the server's, never a client's.
"""

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from typing import Any, Dict, Optional

import SimpleITK as sitk
from monailabel.datastore.local import DataModel, ImageLabelModel, LocalDatastore, LocalDatastoreModel
from monailabel.interfaces.datastore import DefaultLabelTag

from cmrassist_server.annotations.versions import LabelVersions
from cmrassist_server.core.checkpoints import atomic_write
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import check_id, check_tag
from cmrassist_server.imaging.files import MAX_VOXELS, read_untrusted
from cmrassist_server.imaging.imageio import check_label, check_study_image, extract_frame
from cmrassist_server.io.image_info import check_image_info

logger = logging.getLogger(__name__)

#: Tags only the server writes (model predictions, propagated frames): a client upload may not use them.
MACHINE_TAGS = frozenset({DefaultLabelTag.ORIGINAL.value, "propagated"})
#: Label info keys the server sets; a client's values for them are dropped.
RESERVED_INFO = frozenset(
    {
        "annotator",
        "expertise",
        "accepted_version",
        "reviewed_by",
        "reviewed_at",
        "version",
        "source",
        "ts",
        "name",
        "submitted_at",
    }
)


def atomic_copy(source: str, dest: str) -> None:
    """Copy ``source`` to ``dest`` atomically and durably (CMRAssistError 507 when the disk is full)."""
    atomic_write(dest, lambda tmp: shutil.copyfile(source, tmp))


class CheckedDatastore(LocalDatastore):
    """The local datastore of the app (see the module docstring).

    Args:
        datastore_path: the studies folder.
        versions: the label-version store (``None``: no versions, ``final`` is replaced by each submission).
        max_voxels: largest upload accepted.
    """

    def __init__(
        self,
        datastore_path: str,
        *,
        versions: Optional[LabelVersions] = None,
        max_voxels: int = MAX_VOXELS,
        extensions=("*.nii.gz", "*.nii", "*.nrrd"),
    ):
        self._write_lock = threading.RLock()
        self.versions = versions
        self.max_voxels = max_voxels
        recover_index(os.path.join(datastore_path, "datastore_v2.json"))
        super().__init__(datastore_path, extensions=extensions, auto_reload=False)
        self._snapshot_index()

    # -- the index ----------------------------------------------------------------------------------------------
    def _update_datastore_file(self, lock=True):
        with self._write_lock:
            data = json.dumps(self._datastore.model_dump(exclude={"base_path"}), indent=2, default=str)

            def write(tmp: str) -> None:
                with open(tmp, "w") as f:
                    f.write(data)

            atomic_write(self._datastore_config_path, write)
            self._config_ts = os.stat(self._datastore_config_path).st_mtime

    def _snapshot_index(self) -> None:
        """A copy of the index as it was at start: what :func:`recover_index` falls back on."""
        if os.path.isfile(self._datastore_config_path):
            atomic_copy(self._datastore_config_path, self._datastore_config_path + ".bak")

    # -- checks -----------------------------------------------------------------------------------------------
    def _known(self, image_id: str) -> None:
        check_id(image_id)
        if image_id not in self._datastore.objects:
            raise CMRAssistError(f"unknown image id {image_id!r}", 404)

    def get_image_uri(self, image_id: str) -> str:
        self._known(image_id)
        return super().get_image_uri(image_id)

    def get_image_info(self, image_id: str) -> Dict[str, Any]:
        self._known(image_id)
        return super().get_image_info(image_id)

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        self._known(label_id)
        return super().get_label_uri(label_id, label_tag)

    # -- writes -----------------------------------------------------------------------------------------------
    def add_image(self, image_id: str, image_filename: str, image_info: Dict[str, Any]) -> str:
        """A new study: checked, stored as NIfTI, indexed; 409 for an existing id."""
        image_id = image_id or os.path.basename(image_filename).split(".")[0]
        check_id(image_id)
        info = check_image_info(image_info or {})
        image = read_untrusted(image_filename, max_voxels=self.max_voxels)
        check_study_image(image)
        with self._write_lock:
            if image_id in self._datastore.objects:
                raise CMRAssistError(f"image id {image_id!r} exists already", 409)
            name = image_id + ".nii.gz"
            self._store_file(image, image_filename, os.path.join(self._datastore.image_path(), name))
            stored = {**info, "ts": int(time.time()), "name": name}
            self._datastore.objects[image_id] = ImageLabelModel(image=DataModel(info=stored, ext=".nii.gz"))
            self._update_datastore_file()
        return image_id

    def frame_study(self, cine_id: str, frame: int) -> str:
        """The 3D study of frame ``frame`` (1-based) of the stored cine ``cine_id``: ``<cine>_frameNN``, made once
        on the server from its own copy, so a client segmenting, checking or labelling one frame uploads nothing.

        Raises:
            CMRAssistError: 404 unknown cine, 422 a 3D image or a frame outside the cine.
        """
        image_id = f"{check_id(cine_id)}_frame{frame:02d}"
        if image_id in self._datastore.objects:  # the usual case: no scan of the index
            return image_id
        for known, obj in list(self._datastore.objects.items()):  # e.g. a DICOM import's ED and ES studies
            if obj.image.info.get("source_image") == cine_id and obj.image.info.get("frame") == frame:
                return known
        info = self.get_image_info(cine_id)
        cine = sitk.ReadImage(self.get_image_uri(cine_id))
        if cine.GetDimension() != 4:
            raise CMRAssistError(f"{cine_id!r} is one 3D frame: cine_frame applies to a cine", 422)
        if not 1 <= frame <= cine.GetSize()[3]:
            raise CMRAssistError(f"frame {frame} is outside the cine's 1-{cine.GetSize()[3]}", 422)
        kept = {k: info[k] for k in ("patient", "group", "ed_frame", "es_frame", "n_frames") if k in info}
        phase = "ED" if frame == info.get("ed_frame") else "ES" if frame == info.get("es_frame") else "CINE_FRAME"
        kept.update(phase=phase, frame=frame, source_image=cine_id, source="cine frame (made by the server)")
        with tempfile.TemporaryDirectory(prefix="cmrassist-") as folder:
            path = os.path.join(folder, image_id + ".nii.gz")
            sitk.WriteImage(extract_frame(cine, frame - 1), path, useCompression=True)
            try:
                return self.add_image(image_id, path, kept)
            except CMRAssistError as e:
                if e.status == 409:  # made by a request running beside this one
                    return image_id
                raise

    def _store_file(self, image: sitk.Image, source: str, dest: str) -> None:
        """The upload's bytes when it is already NIfTI-gz, else the image written as NIfTI-gz; atomically."""
        if source.endswith(".nii.gz"):
            atomic_copy(source, dest)
            return
        with tempfile.TemporaryDirectory(prefix="cmrassist-") as folder:
            staged = os.path.join(folder, "staged.nii.gz")
            sitk.WriteImage(image, staged, useCompression=True)
            atomic_copy(staged, dest)

    def store_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        """Check ``label_filename`` against its study and store it under ``label_tag`` (no version logic)."""
        self._known(image_id)
        check_tag(label_tag)
        try:
            label = read_untrusted(label_filename, max_voxels=self.max_voxels)
            check_label(label, sitk.ReadImage(super().get_image_uri(image_id)))
        except CMRAssistError as e:
            raise CMRAssistError(f"label refused: {e}", e.status) from None
        with self._write_lock:
            folder = self._datastore.label_path(label_tag)
            os.makedirs(folder, exist_ok=True)
            name = image_id + ".nii.gz"
            self._store_file(label, label_filename, os.path.join(folder, name))
            obj = self._datastore.objects[image_id]
            info = {**label_info, "ts": int(time.time()), "name": name}
            obj.labels[label_tag] = DataModel(info=info, ext=".nii.gz")
            self._update_datastore_file()
        return image_id

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        """MONAI Label's entry point: ``final`` goes through :meth:`submit` (its annotator from ``label_info``), other
        tags are stored as they are (the server's own predictions and propagated labels)."""
        info = dict(label_info or {})
        if label_tag == DefaultLabelTag.FINAL.value and self.versions is not None:
            self.submit(
                image_id,
                label_filename,
                annotator=str(info.get("annotator") or "").strip() or "unnamed",
                expertise=str(info.get("expertise") or "unknown"),
                info=info,
            )
            return image_id
        return self.store_label(image_id, label_filename, label_tag, info)

    def submit(
        self,
        image_id: str,
        label_filename: str,
        *,
        annotator: str,
        expertise: str,
        info: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """A ``final`` submission: kept as ``annotator``'s version; made ``final`` unless a reviewer accepted one.

        Returns:
            ``{"version": id, "final": whether final was replaced}``.
        """
        self._known(image_id)
        extra = {k: v for k, v in (info or {}).items() if k not in RESERVED_INFO}
        provenance = {**extra, "annotator": annotator, "expertise": expertise}
        provenance["submitted_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")  # the server's clock, never the client's
        if self.versions is None:
            self.store_label(image_id, label_filename, DefaultLabelTag.FINAL.value, provenance)
            return {"version": None, "final": True}
        with self._write_lock:
            # Checked before a version is kept: a refused label leaves no trace.
            check_label(
                read_untrusted(label_filename, max_voxels=self.max_voxels),
                sitk.ReadImage(super().get_image_uri(image_id)),
            )
            self._keep_legacy_final(image_id)
            entry = self.versions.add(image_id, label_filename, provenance)
            if self.versions.accepted(image_id) is not None:
                return {"version": entry["id"], "final": False}  # the reviewed final stays
            self.store_label(
                image_id, label_filename, DefaultLabelTag.FINAL.value, {**provenance, "version": entry["id"]}
            )
            return {"version": entry["id"], "final": True}

    def store_reviewed_final(self, image_id: str, label_filename: str, info: Dict[str, Any]) -> None:
        """``final`` set by a reviewer's decision (accept or consensus); only the review service calls this."""
        self.store_label(image_id, label_filename, DefaultLabelTag.FINAL.value, info)

    def _keep_legacy_final(self, image_id: str) -> None:
        """A ``final`` stored before versions existed (e.g. imported expert labels) becomes the first version."""
        if self.versions.list(image_id)["versions"]:
            return
        existing = self._datastore.objects[image_id].labels.get(DefaultLabelTag.FINAL.value)
        path = super().get_label_uri(image_id, DefaultLabelTag.FINAL.value) if existing else None
        if path and os.path.isfile(path):
            info = dict(existing.info or {})
            info.setdefault("annotator", "original")
            self.versions.add(image_id, path, info, source="imported")

    def update_image_info(self, image_id: str, info: Dict[str, Any]) -> None:
        self._known(image_id)
        checked = check_image_info(info or {})
        with self._write_lock:
            self._datastore.objects[image_id].image.info.update(checked)
            self._update_datastore_file()

    def update_label_info(self, label_id: str, label_tag: str, info: Dict[str, Any]) -> None:
        raise CMRAssistError("a label's info is kept as it was submitted (who made it and when)", 405)

    def remove_image(self, image_id: str) -> None:
        raise CMRAssistError("studies are not removed through the API (their labels and versions are provenance)", 405)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        raise CMRAssistError("labels are not removed through the API; a reviewer accepts another version instead", 405)


def recover_index(path: str) -> None:
    """Make a damaged ``datastore_v2.json`` loadable: its start-up copy when that is whole, else none (MONAI Label
    then rebuilds the index from the files; image infos are lost, which is logged). The damaged file is kept."""
    if not os.path.isfile(path) or _loads(path):
        return
    damaged = f"{path}.damaged-{int(time.time())}"
    os.replace(path, damaged)
    backup = path + ".bak"
    if os.path.isfile(backup) and _loads(backup):
        shutil.copyfile(backup, path)
        logger.error(f"datastore index {path} was damaged (kept as {damaged}); restored from its start-up copy")
    else:
        logger.error(f"datastore index {path} was damaged (kept as {damaged}); rebuilding it from the files")


def _loads(path: str) -> bool:
    try:
        with open(path) as f:
            LocalDatastoreModel.model_validate_json(f.read())
        return True
    except (OSError, ValueError):
        return False

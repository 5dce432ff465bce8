"""A PACS (any DICOMweb server, e.g. Orthanc) as the MONAI Label datastore, for short-axis cine.

What it keeps of MONAI Label's ``DICOMWebDatastore``: a local datastore as the cache (so every part of the app
reads files as with a studies folder), its DICOMweb client (``DICOMwebClientX``, which copes with servers that
answer multipart with another content type), QIDO search and STOW upload. What it replaces: an image is a
short-axis cine (one series, one series per slice location, or one enhanced instance), not a series; the cine is
assembled with the same checks as ``import-dicom`` (ED and ES frames as their own studies); no dcmqi download at
start; labels go back as DICOM SEG written here (``seg.py``), and SEGs in the PACS come back as labels.
"""

import hashlib
import logging
import os
import tempfile
import time
from collections import defaultdict
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset

from cmrassist_server.core.checkpoints import atomic_write_json
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import check_label, extract_frame, read_image, write_label_like
from cmrassist_server.io.datastore import CheckedDatastore
from cmrassist_server.io.dicom.frames import FrameRecord, frame_records
from cmrassist_server.io.dicom.importer import (
    PhaseFinder,
    cine_base_id,
    load_references,
    write_cine_studies,
)
from cmrassist_server.io.dicom.seg import phase_of, read_seg, write_seg
from cmrassist_server.io.dicom.stacks import CineStack, find_cines
from cmrassist_server.io.dicom.volume import cine_array, cine_image, references, stack_info

logger = logging.getLogger(__name__)

#: How often listing the images looks for new studies and SEGs in the PACS.
REFRESH_S = 60.0


def dicomweb_client(url: str):
    """MONAI Label's DICOMweb client (user and password from its settings when given)."""
    from monailabel.config import settings
    from monailabel.datastore.dicom import DICOMwebClientX

    session = None
    if settings.MONAI_LABEL_DICOMWEB_USERNAME and settings.MONAI_LABEL_DICOMWEB_PASSWORD:
        from dicomweb_client.session_utils import create_session_from_user_pass

        session = create_session_from_user_pass(
            settings.MONAI_LABEL_DICOMWEB_USERNAME, settings.MONAI_LABEL_DICOMWEB_PASSWORD
        )
    return DICOMwebClientX(url=url, session=session)


def _uid(item: Dict, tag: str) -> str:
    return str((item.get(tag) or {}).get("Value", [""])[0])


class _Writer:
    """What ``write_cine_studies`` writes through: images straight into this datastore."""

    def __init__(self, datastore: "DicomWebCineDatastore"):
        self.datastore, self.folder = datastore, datastore.folder

    def add_image(self, image_id: str, image: sitk.Image, info: Dict) -> str:
        with tempfile.TemporaryDirectory(prefix="cmrassist-") as tmp:
            path = os.path.join(tmp, image_id + ".nii.gz")
            sitk.WriteImage(image, path, useCompression=True)
            return self.datastore.add_image(image_id, path, info)


class DicomWebCineDatastore(CheckedDatastore):
    """The short-axis cines of a DICOMweb server, mirrored into a local cache folder.

    Args:
        url: DICOMweb root, e.g. ``http://127.0.0.1:8042/dicom-web``.
        cache_root: where the cache folders live (one per DICOMweb URL, each a studies folder the app reads).
        phases: ED/ES from the served segmentation model (``None`` answers: no model yet).
        client: a DICOMweb client (MONAI Label's by default).
    """

    def __init__(self, url: str, cache_root: str, *, phases: Optional[PhaseFinder] = None, client=None):
        cache = os.path.join(cache_root, hashlib.sha1(url.encode()).hexdigest()[:12])  # one cache per PACS
        os.makedirs(cache, exist_ok=True)
        self.url, self.folder, self.phases = url, cache, phases
        self.client = client or dicomweb_client(url)
        self.state_path = os.path.join(cache, ".cmrassist", "dicomweb.json")
        self.state = self._load_state()
        self.refused: Dict[str, str] = {}
        super().__init__(cache, extensions=("*.nii.gz",))
        self._synced = 0.0
        try:
            self.sync()
        except CMRAssistError:
            raise
        except Exception as e:  # requests and DICOMweb errors: the server cannot start without its PACS
            raise CMRAssistError(f"cannot read the DICOMweb server at {url}: {e}", 502) from None

    def name(self) -> str:
        return self.url

    def _load_state(self) -> Dict[str, Any]:
        import json

        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {"seg_series": {}}

    def _save_state(self) -> None:
        atomic_write_json(self.state_path, self.state)

    def list_images(self) -> List[str]:
        if time.time() - self._synced > REFRESH_S:
            try:
                self.sync()
            except Exception as e:  # the cache keeps serving while the PACS is away
                logger.warning(f"DICOMweb refresh failed, serving the cache: {e}")
        return super().list_images()

    # -- PACS -> cache --------------------------------------------------------------------------------------
    def sync(self) -> Dict[str, Any]:
        """Fetch new short-axis cines and new SEGs from the PACS; returns what was added and left out."""
        self._synced = time.time()
        series = self.client.search_for_series(search_filters={"Modality": "MR"})
        by_study: Dict[str, List[str]] = defaultdict(list)
        for item in series:
            by_study[_uid(item, "0020000D")].append(_uid(item, "0020000E"))
        added, skipped = [], []
        for study, series_uids in sorted(by_study.items()):
            try:
                records, headers = self._records(study, series_uids)
                stacks, left_out = find_cines(records)
            except CMRAssistError as e:
                if self.refused.get(study) != str(e):
                    logger.warning(f"DICOMweb study {study} refused: {e}")
                self.refused[study] = str(e)
                continue
            skipped += [s.line() for s in left_out]
            for stack in stacks:
                added += self._add_cine(stack, headers[stack.first.series])
        labels = self._sync_segs()
        logger.info(
            f"DICOMweb sync: {len(added)} images added, {labels} labels from SEG, {len(skipped)} series left out"
        )
        return {"images": added, "labels": labels, "skipped": skipped, "refused": dict(self.refused)}

    def _metadata(self, study: str, series: str) -> List[Dict]:
        path = os.path.join(self.folder, ".cmrassist", "dicomweb", "series", series + ".json")
        if os.path.isfile(path):
            import json

            with open(path) as f:
                return json.load(f)
        meta = self.client.retrieve_series_metadata(study, series)
        atomic_write_json(path, meta)
        return meta

    def _records(self, study: str, series_uids: List[str]) -> Tuple[List[FrameRecord], Dict[str, Dataset]]:
        records, headers = [], {}
        for series in series_uids:
            for item in self._metadata(study, series):
                ds = Dataset.from_json(item, bulk_data_uri_handler=lambda *_: b"")
                found = frame_records(ds, str(ds.get("SOPInstanceUID", "")))
                if found:
                    headers.setdefault(series, ds)
                    records += found
        return records, headers

    def _add_cine(self, stack: CineStack, header: Dataset) -> List[str]:
        base = cine_base_id(header, stack)
        if f"{base}_cine" in self._datastore.objects:
            return []
        start = time.time()
        instances: Dict[str, Dataset] = {}
        for series in stack.series:
            for ds in self.client.retrieve_series(stack.first.study, series):
                instances[str(ds.SOPInstanceUID)] = ds
        image = cine_image(stack, cine_array(stack, instances.__getitem__))
        ids = write_cine_studies(
            _Writer(self), base, image, stack_info(stack, header), references(stack, header), self.phases
        )
        logger.info(f"DICOMweb: {stack.describe()} -> {ids} in {time.time() - start:.1f} s")
        return ids

    def _owners(self) -> Dict[str, str]:
        """Source SOP instance UID -> cine id, over every cached cine."""
        out = {}
        for image_id in list(self._datastore.objects):
            if image_id.endswith("_cine"):
                try:
                    refs = load_references(self.folder, image_id)
                except CMRAssistError:
                    continue
                out.update({r["sop_instance"]: image_id for phase in refs["grid"] for r in phase})
        return out

    def _sync_segs(self) -> int:
        """New SEG series of the PACS that reference a cached cine become ``final`` labels (older ones first)."""
        found = self.client.search_for_series(search_filters={"Modality": "SEG"})
        new = [s for s in found if _uid(s, "0020000E") not in self.state["seg_series"]]
        if not new:
            return 0
        owners, count = self._owners(), 0
        for item in sorted(new, key=lambda s: (_uid(s, "00080021"), _uid(s, "00080031"))):
            series = _uid(item, "0020000E")
            try:
                count += self._label_from_seg(self.client.retrieve_series(_uid(item, "0020000D"), series), owners)
                self.state["seg_series"][series] = "imported"
            except CMRAssistError as e:
                logger.warning(f"DICOMweb SEG series {series} left out: {e}")
                self.state["seg_series"][series] = f"left out: {e}"
        self._save_state()
        return count

    def _label_from_seg(self, datasets: List[Dataset], owners: Dict[str, str]) -> int:
        first = datasets[0].PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
        cine_id = owners.get(str(first.ReferencedSOPInstanceUID))
        if cine_id is None:
            raise CMRAssistError("it references no cine of this datastore")
        refs = load_references(self.folder, cine_id)
        labels, info = read_seg(datasets, refs)
        cine = read_image(super().get_image_uri(cine_id))
        if len(labels) == 1:
            ((t, array),) = labels.items()
            target, reference = self._frame_study(cine_id, cine, t), None
        else:
            array = np.zeros((len(refs["grid"]), *next(iter(labels.values())).shape), np.uint8)
            for t, frame in labels.items():
                array[t] = frame
            target, reference = cine_id, cine
        with tempfile.TemporaryDirectory(prefix="cmrassist-") as tmp:
            path = write_label_like(
                array, reference or read_image(super().get_image_uri(target)), os.path.join(tmp, target + ".nii.gz")
            )
            self.store_label(target, path, "final", {**info, "pacs": self.url})
        return 1

    def _frame_study(self, cine_id: str, cine: sitk.Image, t: int) -> str:
        """The study of cine phase ``t`` (ED, ES or an earlier frame study), made when there is none."""
        for image_id, obj in self._datastore.objects.items():
            if obj.image.info.get("source_image") == cine_id and phase_of(obj.image.info) == t:
                return image_id
        info = self._datastore.objects[cine_id].image.info
        frame_id = f"{cine_id[: -len('_cine')]}_frame{t + 1:02d}"
        keep = {k: info[k] for k in ("patient", "study_instance_uid", "ed_frame", "es_frame", "n_frames") if k in info}
        _Writer(self).add_image(
            frame_id, extract_frame(cine, t), {**keep, "phase": "CINE_FRAME", "frame": t + 1, "source_image": cine_id}
        )
        return frame_id

    # -- cache -> PACS --------------------------------------------------------------------------------------
    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        """MONAI Label's entry point: a ``final`` label is a submission (it goes to the PACS first)."""
        if label_tag != "final":
            return super().save_label(image_id, label_filename, label_tag, label_info)
        info = dict(label_info or {})
        self.submit(
            image_id,
            label_filename,
            annotator=str(info.get("annotator") or "").strip() or "unnamed",
            expertise=str(info.get("expertise") or "unknown"),
            info=info,
        )
        return image_id

    def submit(
        self,
        image_id: str,
        label_filename: str,
        *,
        annotator: str,
        expertise: str,
        info: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """A ``final`` submission goes to the PACS as DICOM SEG first; refused or unreachable: nothing is stored."""
        self._known(image_id)
        image = read_image(self.get_image_uri(image_id))
        try:
            label = check_label(read_image(label_filename), image)
        except CMRAssistError as e:
            raise CMRAssistError(f"label refused: {e}", e.status) from None
        cine_id, phases = self._cine_phases(image_id, image, label)
        datasets = write_seg(
            label, image, load_references(self.folder, cine_id), phases=phases, annotator=annotator, expertise=expertise
        )
        series = str(datasets[0].SeriesInstanceUID)
        try:
            self.client.store_instances(datasets)
        except Exception as e:
            raise CMRAssistError(f"the PACS at {self.url} did not store the DICOM SEG: {e}", 502) from None
        self.state["seg_series"][series] = "uploaded"
        self._save_state()
        extra = {**(info or {}), "seg_series_instance_uid": series, "pacs": self.url}
        return super().submit(image_id, label_filename, annotator=annotator, expertise=expertise, info=extra)

    def _cine_phases(self, image_id: str, image: sitk.Image, label: np.ndarray) -> Tuple[str, List[int]]:
        info = self.get_image_info(image_id) or {}
        if image.GetDimension() == 4:
            if label.ndim != 4:
                raise CMRAssistError("a 3D label of a cine cannot be placed: submit it on the frame's own study", 422)
            return image_id, list(range(label.shape[0]))
        t = phase_of(info)
        if not info.get("source_image") or t is None:
            raise CMRAssistError(f"{image_id!r} has no DICOM source in the PACS: its label cannot go back as SEG", 409)
        return str(info["source_image"]), [t]

"""Review of label versions: list an image's versions, accept one as ``final``, build a STAPLE consensus."""

import logging
import os
import tempfile
import time
from typing import Callable, List, Optional

import SimpleITK as sitk

from cmrassist_server.annotations.versions import CONSENSUS, LabelVersions
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import check_id

logger = logging.getLogger(__name__)


class VersionService:
    """Versions plus the datastore they belong to.

    Args:
        versions: the version store.
        datastore: returns the app's datastore (its ``final`` label is what training reads).
    """

    def __init__(self, versions: LabelVersions, datastore: Callable):
        self.versions = versions
        self.datastore = datastore

    def _known(self, image_id: str) -> None:
        check_id(image_id)
        self.datastore().get_image_uri(image_id)  # 404 for unknown images

    def list(self, image_id: str):
        self._known(image_id)
        return self.versions.list(image_id)

    def accept(self, image_id: str, vid: str, reviewer: str):
        """Make version ``vid`` the ``final`` label (recorded with the reviewer and the version it came from)."""
        self._known(image_id)
        if not reviewer or not reviewer.strip():
            raise CMRAssistError("the reviewer's name is empty", 422)
        entry = self.versions.get(image_id, vid)
        info = {
            "annotator": entry["annotator"],
            "expertise": entry["expertise"],
            "accepted_version": vid,
            "reviewed_by": reviewer.strip(),
            "reviewed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "source": entry.get("source", "submitted"),
        }
        self.datastore().store_reviewed_final(image_id, self.versions.path(image_id, vid), info)
        self.versions.set_accepted(image_id, vid, reviewer.strip())
        return {**self.versions.list(image_id), "final": info}

    def consensus(self, image_id: str, reviewer: str, vids: Optional[List[str]]):
        """STAPLE of the chosen versions, kept as version ``consensus`` and made ``final``."""
        self._known(image_id)
        if not reviewer or not reviewer.strip():  # checked before anything is written
            raise CMRAssistError("the reviewer's name is empty", 422)
        label, chosen = self.versions.consensus(image_id, vids)
        reference = sitk.ReadImage(self.versions.path(image_id, chosen[0]))
        out = sitk.GetImageFromArray(label)
        out.CopyInformation(reference)
        fd, tmp = tempfile.mkstemp(suffix=".nii.gz")
        os.close(fd)
        try:
            sitk.WriteImage(out, tmp, useCompression=True)
            self.versions.add(
                image_id,
                tmp,
                {"annotator": CONSENSUS, "expertise": "consensus", "members": chosen, "method": "multi-label STAPLE"},
                source="consensus",
                vid=CONSENSUS,
            )
        finally:
            os.remove(tmp)
        return self.accept(image_id, CONSENSUS, reviewer)

"""Label version endpoints under ``/versions``: list an image's versions, download one, accept one, build a consensus."""

import logging
import os
import tempfile
import time
from typing import Callable, List, Optional

import SimpleITK as sitk
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel

from .datastore import check_id
from .routes import mount_first
from .versions import CONSENSUS, LabelVersions, VersionError

logger = logging.getLogger(__name__)


class AcceptRequest(BaseModel):
    version: str
    reviewer: str


class ConsensusRequest(BaseModel):
    reviewer: str
    versions: Optional[List[str]] = None  # all submitted versions when omitted


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
            raise VersionError("the reviewer's name is empty", 422)
        entry = self.versions.get(image_id, vid)
        info = {"annotator": entry["annotator"], "expertise": entry["expertise"], "accepted_version": vid,
                "reviewed_by": reviewer.strip(), "reviewed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "source": entry.get("source", "submitted")}
        self.datastore().save_label(image_id, self.versions.path(image_id, vid), "final", info)
        self.versions.set_accepted(image_id, vid, reviewer.strip())
        return {**self.versions.list(image_id), "final": info}

    def consensus(self, image_id: str, reviewer: str, vids: Optional[List[str]]):
        """STAPLE of the chosen versions, kept as version ``consensus`` and made ``final``."""
        self._known(image_id)
        label, chosen = self.versions.consensus(image_id, vids)
        reference = sitk.ReadImage(self.versions.path(image_id, chosen[0]))
        out = sitk.GetImageFromArray(label)
        out.CopyInformation(reference)
        fd, tmp = tempfile.mkstemp(suffix=".nii.gz")
        os.close(fd)
        try:
            sitk.WriteImage(out, tmp, useCompression=True)
            self.versions.add(image_id, tmp, {"annotator": CONSENSUS, "expertise": "consensus", "members": chosen,
                                              "method": "multi-label STAPLE"}, source="consensus", vid=CONSENSUS)
        finally:
            os.remove(tmp)
        return self.accept(image_id, CONSENSUS, reviewer)


def install_version_routes(app: FastAPI, service: VersionService) -> None:
    """Add the ``/versions`` routes (in front of MONAI Label's)."""
    from monailabel.config import settings
    from monailabel.endpoints.user.auth import RBAC, User

    reviewer = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_REVIEWER))
    user_role = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))
    router = APIRouter(prefix=settings.MONAI_LABEL_API_STR + "/versions", tags=["Label versions"])

    def guarded(fn):
        try:
            return fn()
        except VersionError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None

    @router.get("/{image}", summary="An image's label versions: who made each, their expertise, when; the accepted one")
    def list_versions(image: str, user: User = user_role):
        return guarded(lambda: service.list(image))

    @router.get("/{image}/{version}", summary="One label version as NIfTI", response_class=FileResponse)
    def download(image: str, version: str, user: User = user_role):
        service._known(image)
        guarded(lambda: service.versions.get(image, version))
        return FileResponse(service.versions.path(image, version), media_type="application/gzip",
                            filename=f"{image}_{version}.nii.gz")

    @router.post("/{image}/accept", summary="Make one version the final label")
    def accept(image: str, body: AcceptRequest, user: User = reviewer):
        return guarded(lambda: service.accept(image, body.version, body.reviewer))

    @router.post("/{image}/consensus", summary="Multi-label STAPLE of the versions, made the final label")
    def consensus(image: str, body: ConsensusRequest, user: User = reviewer):
        return guarded(lambda: service.consensus(image, body.reviewer, body.versions))

    mount_first(app, router)

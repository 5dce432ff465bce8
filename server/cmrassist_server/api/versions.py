"""Label version endpoints under ``/versions``: list an image's versions, download one, accept one, build a
consensus."""

from typing import List, Optional

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from pydantic import BaseModel

from cmrassist_server.annotations.review import VersionService
from cmrassist_server.api.routing import api_prefix, mount_first, role


class AcceptRequest(BaseModel):
    version: str
    reviewer: str


class ConsensusRequest(BaseModel):
    reviewer: str
    versions: Optional[List[str]] = None  # all submitted versions when omitted


def install_version_routes(app: FastAPI, service: VersionService) -> None:
    """Add the ``/versions`` routes (in front of MONAI Label's)."""
    reviewer, user_role = role("reviewer"), role("user")
    router = APIRouter(prefix=api_prefix() + "/versions", tags=["Label versions"])

    @router.get("/{image}", summary="An image's label versions: who made each, their expertise, when; the accepted one")
    def list_versions(image: str, user=user_role):
        return service.list(image)

    @router.get("/{image}/{version}", summary="One label version as NIfTI", response_class=FileResponse)
    def download(image: str, version: str, user=user_role):
        service._known(image)
        service.versions.get(image, version)
        return FileResponse(
            service.versions.path(image, version), media_type="application/gzip", filename=f"{image}_{version}.nii.gz"
        )

    @router.post("/{image}/accept", summary="Make one version the final label")
    def accept(image: str, body: AcceptRequest, user=reviewer):
        return service.accept(image, body.version, body.reviewer)

    @router.post("/{image}/consensus", summary="Multi-label STAPLE of the versions, made the final label")
    def consensus(image: str, body: ConsensusRequest, user=reviewer):
        return service.consensus(image, body.reviewer, body.versions)

    mount_first(app, router, "versions")

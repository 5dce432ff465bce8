"""Label version endpoints under ``/versions``: list an image's versions, download one, accept one, build a
consensus."""

from typing import List, Optional

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import Field

from cmrassist_server.annotations.review import VersionService
from cmrassist_server.api.routing import api_prefix, mount_first, record, role
from cmrassist_server.api.schema import Body
from cmrassist_server.core.errors import CMRAssistError


class AcceptRequest(Body):
    version: str
    reviewer: Optional[str] = None  # the signed-in account when there is one


class ConsensusRequest(Body):
    reviewer: Optional[str] = None  # the signed-in account when there is one
    versions: Optional[List[str]] = Field(None, min_length=1, max_length=1000)  # all submitted ones when omitted


def reviewer_of(account, named: Optional[str]) -> str:
    """The signed-in account; on an open single-user server, the name the client gives."""
    if not account.open:
        return account.name
    if not (named or "").strip():
        raise CMRAssistError("the reviewer's name is empty", 422)
    return named.strip()


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
    def accept(request: Request, image: str, body: AcceptRequest, account=reviewer):
        result = service.accept(image, body.version, reviewer_of(account, body.reviewer))
        record(request, account, "version_accepted", image, version=body.version)
        return result

    @router.post("/{image}/consensus", summary="Multi-label STAPLE of the versions, made the final label")
    def consensus(request: Request, image: str, body: ConsensusRequest, account=reviewer):
        result = service.consensus(image, reviewer_of(account, body.reviewer), body.versions)
        record(request, account, "consensus", image, versions=body.versions)
        return result

    mount_first(app, router, "versions")

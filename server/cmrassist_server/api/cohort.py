"""``POST /batch/analyse`` (admin): a cohort run over the server's studies with the served models, in a child
process; ``GET /batch/analyse`` (any user) its progress and results; ``DELETE /batch/analyse`` (admin) stops it."""

import os
from typing import Dict, Literal, Optional

from fastapi import APIRouter, FastAPI, Request
from pydantic import ConfigDict, Field, field_validator

from cmrassist_server.api.routing import api_prefix, mount_first, record, role
from cmrassist_server.api.schema import Body
from cmrassist_server.cohort.service import CohortService
from cmrassist_server.core.errors import CMRAssistError


class AnalyseRequest(Body):
    """Options of a cohort run (``cmrassist analyse``'s, where the server allows a choice)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    frames: Literal["all", "ed-es"] = "all"
    address: Optional[str] = Field(
        None, max_length=300, pattern=r"^(ray://)?[A-Za-z0-9][A-Za-z0-9_.\-]*:[0-9]{1,5}$|^auto$"
    )
    workers: Optional[int] = Field(None, ge=1, le=10000)
    cpus_per_worker: float = Field(1.0, gt=0, le=256)
    gpus_per_worker: float = Field(0.0, ge=0, le=16)
    retry_failed: bool = False

    @field_validator("address")
    @classmethod
    def _port(cls, address: Optional[str]) -> Optional[str]:
        if address and address != "auto" and not 1 <= int(address.rsplit(":", 1)[1]) <= 65535:
            raise ValueError("the port must be 1-65535")
        return address


def _service(checkpoints: Dict[str, str]) -> CohortService:
    from monailabel.config import settings

    studies = settings.MONAI_LABEL_STUDIES
    if not studies or studies.startswith(("http://", "https://")) or not os.path.isdir(studies):
        raise CMRAssistError("cohort runs need a local studies folder (DICOMweb sources are not supported yet)", 409)
    return CohortService(studies, os.path.join(studies, ".cmrassist"), checkpoints)


def install_cohort_routes(app: FastAPI, checkpoints: Dict[str, str]) -> None:
    """Add the cohort routes.

    Args:
        app: MONAI Label's FastAPI app.
        checkpoints: served checkpoint path by model name (the run uses ``segmentation`` and ``qc``).
    """
    router = APIRouter(prefix=api_prefix() + "/batch", tags=["Cohort"])

    @router.post("/analyse", name="cmrassist_cohort_start", summary="Analyse every study (cohort run)", status_code=202)
    def start(request: Request, body: Optional[AnalyseRequest] = None, account=role("admin")):
        options = (body or AnalyseRequest()).model_dump()
        if not os.path.isfile(checkpoints.get("segmentation") or ""):
            raise CMRAssistError("no segmentation model is served yet: train or install one first", 409)
        result = _service(checkpoints).start(options, user=account.name)
        record(request, account, "cohort_started", None, **options)
        return result

    @router.get("/analyse", name="cmrassist_cohort_status", summary="Progress and results of the cohort run")
    def status(user=role("user")):
        return _service(checkpoints).status()

    @router.delete("/analyse", name="cmrassist_cohort_stop", summary="Stop the cohort run")
    def stop(request: Request, account=role("admin")):
        result = _service(checkpoints).stop()
        record(request, account, "cohort_stopped", None)
        return result

    mount_first(app, router, "cohort")

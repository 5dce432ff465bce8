"""``GET /model_versions/{model}`` (every published version, which one is served) and
``PUT /model_versions/{model}/current`` (serve an earlier one again, admin)."""

from typing import Dict

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

from cmrassist_server.api.routing import api_prefix, mount_first, record, role
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.model_versions import list_versions, make_current


class Current(BaseModel):
    version: str


def install_model_version_routes(app: FastAPI, checkpoints: Dict[str, str]) -> None:
    """Add the model-version routes.

    Args:
        app: MONAI Label's FastAPI app.
        checkpoints: served checkpoint path by model name.
    """
    router = APIRouter(prefix=api_prefix() + "/model_versions", tags=["Model versions"])

    def checkpoint_of(model: str) -> str:
        if model not in checkpoints:
            raise CMRAssistError(f"unknown model {model!r}; available: {sorted(checkpoints)}", 404)
        return checkpoints[model]

    @router.get(
        "/{model}", name="cmrassist_model_versions", summary="Published versions of a model, with their records"
    )
    async def versions(model: str, user=role("user")):
        return {"model": model, "versions": list_versions(checkpoint_of(model))}

    @router.put("/{model}/current", name="cmrassist_model_current", summary="Serve an earlier version again")
    async def set_current(request: Request, model: str, body: Current, account=role("admin")):
        result = make_current(checkpoint_of(model), body.version)
        record(request, account, "model_version_served", model, version=body.version)
        return result

    mount_first(app, router, "model_versions")

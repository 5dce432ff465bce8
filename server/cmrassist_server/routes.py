"""Checks added in front of MONAI Label's own routes, so bad requests get a 4xx before any work starts."""

import logging
from typing import Optional

from fastapi import Depends, FastAPI, HTTPException
from fastapi.routing import APIRoute

from .engine import TrainOptions

logger = logging.getLogger(__name__)


def mount_first(app: FastAPI, router) -> None:
    """Put ``router``'s routes in front of MONAI Label's (once: a second call with the same prefix does nothing)."""
    if any(getattr(r, "path", "").startswith(router.prefix) for r in app.router.routes):
        return
    for route in reversed(router.routes):
        app.router.routes.insert(0, route)


def install_train_checks(app: FastAPI, trainers) -> None:
    """Put a ``POST /train/{model}`` route first that validates the model and params, then runs MONAI Label's.

    Args:
        app: MONAI Label's FastAPI app (routes are matched in order, so ours answers first).
        trainers: the app's train tasks by name.
    """
    from monailabel.config import settings
    from monailabel.endpoints.train import run_model
    from monailabel.endpoints.user.auth import RBAC, User

    async def checked_train(model: str, params: Optional[dict] = None, run_sync: Optional[bool] = False,
                            enqueue: Optional[bool] = False,
                            user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
        if model not in trainers:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {sorted(trainers)}")
        request = {**getattr(trainers[model], "defaults", {}), **(params or {})}
        try:
            options_type = getattr(trainers[model], "options_type", TrainOptions)
            options = options_type.from_request(request)
        except ValueError as e:
            raise HTTPException(status_code=getattr(e, "status", 422), detail=str(e)) from None
        precheck = getattr(trainers[model], "precheck", None)
        if precheck is not None:
            try:
                precheck(options)  # e.g. nothing ranked yet: say so now rather than in a failed training process
            except ValueError as e:
                raise HTTPException(status_code=getattr(e, "status", 409), detail=str(e)) from None
        return run_model(model, params, run_sync, enqueue)

    path = settings.MONAI_LABEL_API_STR + "/train/{model}"
    if any(getattr(r, "name", "") == "cmrassist_checked_train" for r in app.router.routes):
        return
    route = APIRoute(path, checked_train, methods=["POST"], name="cmrassist_checked_train",
                     summary="Run training of a model (params checked first)")
    app.router.routes.insert(0, route)


def install_model_version_routes(app: FastAPI, checkpoints) -> None:
    """``GET /model_versions/{model}`` and ``PUT /model_versions/{model}/current`` (admin) in front of MONAI Label's.

    Args:
        app: MONAI Label's FastAPI app.
        checkpoints: served checkpoint path by model name.
    """
    from monailabel.config import settings
    from monailabel.endpoints.user.auth import RBAC, User
    from pydantic import BaseModel

    from .model_versions import ModelVersionError, list_versions, make_current

    class Current(BaseModel):
        version: str

    def checkpoint_of(model: str) -> str:
        if model not in checkpoints:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {sorted(checkpoints)}")
        return checkpoints[model]

    async def versions(model: str, user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))):
        return {"model": model, "versions": list_versions(checkpoint_of(model))}

    async def set_current(model: str, body: Current, user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
        try:
            return make_current(checkpoint_of(model), body.version)
        except ModelVersionError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None

    base = settings.MONAI_LABEL_API_STR + "/model_versions/{model}"
    if any(getattr(r, "name", "") == "cmrassist_model_versions" for r in app.router.routes):
        return
    app.router.routes.insert(0, APIRoute(base, versions, methods=["GET"], name="cmrassist_model_versions",
                                         summary="Published versions of a model, with their records"))
    app.router.routes.insert(0, APIRoute(base + "/current", set_current, methods=["PUT"], name="cmrassist_model_current",
                                         summary="Serve an earlier version again"))

"""``POST /train/{model}`` checked before MONAI Label's own route runs it: unknown models 404, bad params 422,
nothing to train from 409 (``precheck``), so no training process starts on a request that cannot succeed."""

from typing import Dict, Optional

from fastapi import APIRouter, FastAPI

from cmrassist_server.api.routing import api_prefix, mount_first, role
from cmrassist_server.core.errors import CMRAssistError


def install_train_routes(app: FastAPI, trainers: Dict) -> None:
    """Put a checked ``POST /train/{model}`` in front of MONAI Label's.

    Args:
        app: MONAI Label's FastAPI app.
        trainers: the app's train tasks by name (``lib.trainers.base.CheckpointTrainTask``).
    """
    from monailabel.endpoints.train import run_model

    router = APIRouter(prefix=api_prefix() + "/train", tags=["Train"])

    @router.post("/{model}", name="cmrassist_checked_train", summary="Run training of a model (params checked first)")
    async def checked_train(
        model: str,
        params: Optional[dict] = None,
        run_sync: Optional[bool] = False,
        enqueue: Optional[bool] = False,
        user=role("admin"),
    ):
        if model not in trainers:
            raise CMRAssistError(f"unknown model {model!r}; available: {sorted(trainers)}", 404)
        task = trainers[model]
        task.precheck(task.options(params or {}))
        return run_model(model, params, run_sync, enqueue)

    mount_first(app, router, "train")

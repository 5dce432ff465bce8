"""``POST /train/{model}`` checked before MONAI Label's own route runs it: unknown models 404, bad params 422,
nothing to train from 409 (``precheck``), so no training process starts on a request that cannot succeed."""

from typing import Dict, Optional

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from cmrassist_server.api.routing import api_prefix, mount_first, record, role
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
    async def checked_train(request: Request, model: str, params: Optional[dict] = None, run_sync: Optional[bool] = False,
                            enqueue: Optional[bool] = False, account=role("admin")):  # fmt: skip
        if model not in trainers:
            raise CMRAssistError(f"unknown model {model!r}; available: {sorted(trainers)}", 404)
        if run_sync:
            raise CMRAssistError("training runs in its own process; run_sync would stall every request", 422)
        task = trainers[model]
        await run_in_threadpool(lambda: task.precheck(task.options(params or {})))
        result = run_model(model, params, False, enqueue)
        record(request, account, "training_started", model, params=params or {})
        return result

    mount_first(app, router, "train")

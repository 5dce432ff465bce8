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
    for name, task in trainers.items():
        _add_train_route(router, name, task, run_model)

    @router.post("/{model}", name="cmrassist_unknown_train", summary="Any other model: not found")
    async def unknown_train(model: str, account=role("admin")):
        raise CMRAssistError(f"unknown model {model!r}; available: {sorted(trainers)}", 404)

    mount_first(app, router, "train")


def _add_train_route(router: APIRouter, name: str, task, run_model) -> None:
    """``POST /train/<name>`` whose body is the task's options schema (the app's defaults in it): FastAPI checks it
    before the handler runs and the OpenAPI schema publishes it; the handler hands the checked options on."""
    schema = task.options_type.with_defaults(task.defaults)

    async def checked_train(
        request: Request,
        params: Optional[schema] = None,
        run_sync: Optional[bool] = False,
        enqueue: Optional[bool] = False,
        account=role("admin"),
    ):
        if run_sync:
            raise CMRAssistError("training runs in its own process; run_sync would stall every request", 422)
        options = params if params is not None else schema()
        await run_in_threadpool(lambda: task.precheck(options))
        chosen = options.model_dump()
        result = run_model(name, chosen, False, enqueue)
        record(request, account, "training_started", name, params=chosen)
        return result

    summary = f"Train {name} (options checked first)"
    router.add_api_route(f"/{name}", checked_train, methods=["POST"], name=f"cmrassist_train_{name}", summary=summary)

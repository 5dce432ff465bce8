"""``POST /infer/{model}``, answered before MONAI Label's route of the same path: params must be a JSON object,
an uploaded file is checked as untrusted and marked as uploaded (a path in a request is never taken for one),
predictions are saved only under the server's own tags, and the work runs off the event loop (other requests,
``GET /info/`` included, are answered while a cine is segmented)."""

import asyncio
import os
from typing import Any, Dict, Optional

from fastapi import APIRouter, BackgroundTasks, FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from cmrassist_server.api.datastore import saved_upload
from cmrassist_server.api.infer_params import checked_params
from cmrassist_server.api.routing import api_prefix, mount_first, role
from cmrassist_server.api.schema import json_object
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.foreground import Foreground
from cmrassist_server.core.ids import check_id
from cmrassist_server.core.options import parse_bool
from cmrassist_server.imaging.files import read_untrusted
from cmrassist_server.io.datastore import MACHINE_TAGS

#: The request key that says the image is a file this route received (clients' params cannot set it).
UPLOADED = "cmrassist_upload"
OUTPUTS = (None, "image", "json")


def install_infer_routes(app: FastAPI, instance, uploads: str, *, concurrent: int = 2) -> None:
    """Add the checked infer route.

    Args:
        app: MONAI Label's FastAPI app.
        instance: returns the MONAI Label app (``CMRAssistApp``).
        uploads: folder for uploaded images in flight.
        concurrent: inferences run at once (more wait their turn instead of exhausting memory).
    """
    from monailabel.endpoints.infer import send_response

    os.makedirs(uploads, exist_ok=True)
    turns = asyncio.Semaphore(concurrent)
    router = APIRouter(prefix=api_prefix() + "/infer", tags=["Infer"])

    @router.post("/{model}", summary="Run a model on a stored study (image=ID) or an uploaded file")
    async def infer(
        request: Request,
        background_tasks: BackgroundTasks,
        model: str,
        image: str = "",
        params: str = Form("{}"),
        file: Optional[UploadFile] = File(None),
        output: Optional[str] = None,
        account=role("user"),
    ):
        app_ = instance()
        if model not in app_._infers:
            raise CMRAssistError(f"unknown model {model!r}; available: {sorted(app_._infers)}", 404)
        if output not in OUTPUTS:
            raise CMRAssistError(f"output must be 'image' or 'json', not {output!r}", 422)
        values = {k: v for k, v in json_object(params).items() if not k.startswith("cmrassist")}
        values = checked_params(app_._infers[model], values)
        decide_writes(app_._infers[model], values, account)
        req = {**values, "model": model}
        if file is not None and file.filename:
            if values.get("cine_frame"):
                raise CMRAssistError("cine_frame names a frame of a stored cine (image=ID), not of an upload", 422)
            path = await run_in_threadpool(saved_upload, file, uploads)
            background_tasks.add_task(_remove, path)
            await run_in_threadpool(read_untrusted, path, max_voxels=app_.app_conf.max_voxels)
            req.update(image=path, **{UPLOADED: path})
        elif image and values.get("cine_frame"):
            req["image"] = await run_in_threadpool(app_.datastore().frame_study, check_id(image), req.pop("cine_frame"))
        elif image:
            req["image"] = check_id(image)
        else:
            raise CMRAssistError("give the study to run on: image=ID, or upload a file", 400)
        # QC scoring waits between images while this request runs (core/foreground.py).
        async with Foreground(app_.app_conf.model_dir).request(), turns:
            result = await run_in_threadpool(app_.infer, req)
        return send_response(app_.datastore(), result, output, background_tasks)

    mount_first(app, router, "infer")


def run_model(app, request: Dict[str, Any], datastore) -> Dict[str, Any]:
    """What ``CMRAssistApp.infer`` does: resolve the image on the server (a stored id, or the file this route
    received; never another path), let the task's ``context`` hook resolve its inputs, run the task, save the
    prediction under a machine tag when asked.

    Returns:
        MONAI Label's infer result: ``{"label", "tag", "file", "params"}``.
    """
    model = request.get("model")
    task = app._infers.get(model)
    if task is None:
        raise CMRAssistError(f"unknown model {model!r}; available: {sorted(app._infers)}", 404)
    request = dict(request)
    uploaded = request.get(UPLOADED) is not None and request.get(UPLOADED) == request.get("image")
    image_id = None if uploaded else check_id(str(request.get("image") or ""))
    if image_id is not None:
        request["image"] = datastore.get_image_uri(image_id)  # 404 for unknown ids
    context = getattr(task, "context", None)
    if context is not None:
        request["cmrassist"] = context(request, image_id, datastore)
    request["description"] = task.description
    label_file, params = task(request)
    tag = request.get("label_tag") or "original"
    if label_file and os.path.exists(label_file) and image_id is not None and request.get("save_label"):
        if tag not in MACHINE_TAGS:
            raise CMRAssistError(f"a prediction is saved under one of {sorted(MACHINE_TAGS)}, never {tag!r}", 422)
        datastore.store_label(image_id, label_file, tag, {"model": model, "annotator": f"model:{model}"})
    return {"label": label_file, "tag": tag, "file": label_file, "params": params}


def decide_writes(task, values: dict, account) -> None:
    """What the request may write, decided before the task runs: ``save_label`` and every writing option a task
    declares (``WRITES``: option -> the machine tag it stores under, e.g. propagate's ``store``) store a prediction,
    only under a machine tag, and only for an annotator (403 otherwise). ``values`` is normalised in place."""
    for option, tag in getattr(task, "WRITES", {}).items():
        if parse_bool(values.get(option, False), option):
            values["save_label"], values["label_tag"] = True, tag
    if values.get("cine_frame") and not account.allows("annotator"):
        raise CMRAssistError(
            "running on a cine frame in place stores its frame study: that needs the annotator role", 403
        )
    if not parse_bool(values.get("save_label", False), "save_label"):
        values.pop("save_label", None)
        return
    tag = values.get("label_tag") or "original"
    if tag not in MACHINE_TAGS:
        raise CMRAssistError(
            f"a prediction is saved under one of {sorted(MACHINE_TAGS)}, never {tag!r} (submit "
            "labels as final through PUT /datastore/label)",
            422,
        )
    if not account.allows("annotator"):
        raise CMRAssistError("saving a prediction needs the annotator role", 403)
    values["save_label"], values["label_tag"] = True, tag


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.remove(path)

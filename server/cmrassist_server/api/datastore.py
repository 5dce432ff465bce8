"""Uploads: ``PUT /datastore/image``, ``PUT /datastore/label`` and ``PUT /datastore/image/info``, and the reads
``GET /datastore/`` and ``GET /datastore/image/info`` (no server paths), answered before
MONAI Label's routes of the same paths: params must be a JSON object, the account (not the request) says who made
a label, machine tags stay the server's, every stored change is audited."""

import os
import shutil
import tempfile
from typing import Any, Dict, Literal, Optional, Tuple

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from cmrassist_server.api.routing import api_prefix, mount_first, record, role
from cmrassist_server.api.schema import json_object, without_server_paths
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import check_id, check_tag
from cmrassist_server.io.datastore import MACHINE_TAGS


def saved_upload(file: UploadFile, folder: str) -> str:
    """The upload in a file of its own (the client's name kept only for its suffix)."""
    name = os.path.basename(file.filename or "upload.nii.gz")
    suffix = ".nii.gz" if name.endswith(".nii.gz") else os.path.splitext(name)[1][:8]
    fd, path = tempfile.mkstemp(suffix=suffix, dir=folder)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(file.file, out)
    return path


def install_datastore_routes(app: FastAPI, datastore, uploads: str) -> None:
    """Add the upload routes.

    Args:
        app: MONAI Label's FastAPI app.
        datastore: returns the app's datastore (``io/datastore.CheckedDatastore``).
        uploads: a folder for uploads in flight.
    """
    os.makedirs(uploads, exist_ok=True)
    router = APIRouter(prefix=api_prefix() + "/datastore", tags=["Datastore"])

    @router.put("/image", summary="Upload a new study (3D frame or 4D cine)")
    async def add_image(
        request: Request,
        image: str = "",
        params: str = Form("{}"),
        file: UploadFile = File(...),
        account=role("annotator"),
    ):
        info = json_object(params)
        path = await run_in_threadpool(saved_upload, file, uploads)
        try:
            image_id = await run_in_threadpool(datastore().add_image, image, path, info)
        finally:
            os.remove(path)
        record(request, account, "study_added", image_id)
        return {"image": image_id}

    @router.put("/label", summary="Submit a label (final: kept as your version; reviewed finals stay)")
    async def save_label(
        request: Request,
        image: str,
        tag: str = "final",
        params: str = Form("{}"),
        label: UploadFile = File(...),
        account=role("annotator"),
    ):
        check_id(image)
        if check_tag(tag) in MACHINE_TAGS:
            raise CMRAssistError(f"label tag {tag!r} is not one a client may store", 400)
        info = json_object(params)
        annotator, expertise = _who(account, info)
        path = await run_in_threadpool(saved_upload, label, uploads)
        try:
            result = await run_in_threadpool(_store_label, datastore(), image, path, tag, (annotator, expertise), info)
        finally:
            os.remove(path)
        record(request, account, "label_stored", image, tag=tag, annotator=annotator, **result)
        return {"image": image, "label": image, "tag": tag, "annotator": annotator, "expertise": expertise, **result}

    @router.put("/image/info", summary="Update a study's info (typed keys checked)")
    async def image_info(request: Request, image: str, info: str = Form("{}"), account=role("annotator")):
        values = json_object(info, "info")
        await run_in_threadpool(datastore().update_image_info, image, values)
        record(request, account, "study_info_updated", image, keys=sorted(values))
        return datastore().get_image_info(image)

    _add_reads(router, datastore)
    mount_first(app, router, "datastore")


def _store_label(store, image: str, path: str, tag: str, who: Tuple[str, str], info: dict) -> dict:
    """A final label becomes the annotator's version; any other tag is stored as it is."""
    annotator, expertise = who
    if tag == "final":
        return store.submit(image, path, annotator=annotator, expertise=expertise, info=info)
    store.store_label(image, path, tag, {**info, "annotator": annotator})
    return {"version": None, "final": False}


def _add_reads(router: APIRouter, datastore) -> None:
    """``GET /datastore/`` and ``GET /datastore/image/info`` without server paths (MONAI Label's show them)."""

    @router.get("/", summary="Every study and label (ids, info and counts; no server paths)")
    def listing(output: Optional[Literal["all", "json", "train", "datalist"]] = None, user=role("user")):
        store = datastore()
        if output in ("train", "datalist"):
            return [{"image": _study_id(e.get("image")), "label": _study_id(e.get("label"))} for e in store.datalist()]
        return without_server_paths(store.json() if output in ("all", "json") else store.status())

    @router.get("/image/info", summary="A study's info (no server path)")
    def get_image_info(image: str, user=role("user")):
        return without_server_paths(datastore().get_image_info(check_id(image)))


def _study_id(path: Optional[str]) -> Optional[str]:
    """The study id a datastore file stands for (its name without ``.nii.gz``)."""
    return os.path.basename(path).split(".")[0] if isinstance(path, str) else path


def _who(account, info: Dict[str, Any]):
    """Who made the label: the signed-in account; on an open single-user server, the name the client gives."""
    if not account.open:
        return account.name, account.expertise or "non_expert"
    name = str(info.get("annotator") or "").strip()
    if not name:
        raise CMRAssistError('say who made the label: params {"annotator": "...", "expertise": "expert"}', 422)
    return name, str(info.get("expertise") or "unknown")

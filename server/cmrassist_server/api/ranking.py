"""Slice-position ranking endpoints under ``/ranking``: batches of 8 slices to order, submissions, progress,
the ordered slices, cut points and the positions derived from them.

Endpoints are plain (not async) functions: FastAPI runs them on its thread pool, so SQLite work and image
reading never block the server's event loop.
"""

import base64
from typing import List, Optional

from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import Field

from cmrassist_server.api.routing import api_prefix, mount_first, record, role
from cmrassist_server.api.schema import Body
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.slice_position.ranking import RankingService, item_json
from cmrassist_server.slice_position.ranking_store import BATCH_SIZE


class BatchRequest(Body):
    annotator: Optional[str] = None  # the signed-in account when there is one
    expertise: str = "expert"
    thumbnails: bool = True  # False: ids only; fetch each PNG from /ranking/thumbnail (in parallel)


class SubmitRequest(Body):
    batch: str
    annotator: Optional[str] = None  # the signed-in account when there is one
    order: List[int] = Field(max_length=64)
    seconds: Optional[float] = Field(None, ge=0, le=86400)


class CutPoints(Body):
    basal_end: float
    apical_start: float


def annotator_of(account, named: Optional[str], expertise: Optional[str]):
    """Who ranks: the signed-in account (its expertise); on an open single-user server, the name the client gives."""
    if not account.open:
        return account.name, account.expertise or "non_expert"
    if not (named or "").strip():
        raise CMRAssistError("annotator name is empty", 422)
    return named.strip(), expertise or "expert"


def install_ranking_routes(app: FastAPI, service: RankingService) -> None:
    """Add the ``/ranking`` routes (in front of MONAI Label's, which have no such prefix)."""
    annotator, reviewer, user_role = role("annotator"), role("reviewer"), role("user")
    router = APIRouter(prefix=api_prefix() + "/ranking", tags=["Ranking"])

    @router.post("/batch", summary="Next batch of 8 slices to order from most basal to most apical")
    def next_batch(body: BatchRequest, account=annotator):
        if service.store.count() < BATCH_SIZE:
            service.sync()
        name, expertise = annotator_of(account, body.annotator, body.expertise)
        batch = service.store.next_batch(name, expertise)
        items = [
            {**item_json(it), **({"thumbnail_png": service.thumbnail(it)} if body.thumbnails else {})}
            for it in batch.items
        ]
        return {"batch": batch.id, "expires": batch.expires, "annotator": batch.annotator, "items": items}

    @router.post("/submit", summary="Submit a batch ordered from most basal to most apical")
    def submit(request: Request, body: SubmitRequest, account=annotator):
        name, _ = annotator_of(account, body.annotator, None)
        result = service.store.submit(body.batch, name, body.order, seconds=body.seconds)
        record(request, account, "ranking_submitted", body.batch, annotator=name, items=len(body.order))
        return result

    @router.post("/sync", summary="Register the slices of studies added since the last sync")
    def sync(user=reviewer):
        return {"added": service.sync(), "items": service.store.count()}

    @router.get("/progress", summary="Items with enough views, batches per annotator")
    def progress(user=user_role):
        return service.store.progress()

    @router.get("/ordered", summary="Every slice from most basal to most apical")
    def ordered(user=reviewer):
        return {"items": [item_json(it) for it in service.store.ordered()], "cut_points": service.store.cut_points()}

    @router.get("/thumbnail", summary="PNG of one ranked slice", response_class=Response)
    def thumbnail(item: int = Query(..., ge=1, le=2**62), user=user_role):
        found = service.store.items([item])
        if not found:
            raise CMRAssistError(f"unknown ranking item {item}", 404)
        return Response(content=base64.b64decode(service.thumbnail(found[0])), media_type="image/png")

    @router.get("/cut_points")
    def get_cut_points(user=user_role):
        return service.store.cut_points() or {}

    @router.put("/cut_points", summary="Ratings where 'too basal' ends and 'too apical' begins")
    def put_cut_points(request: Request, body: CutPoints, account=reviewer):
        result = service.store.set_cut_points(body.basal_end, body.apical_start)
        record(request, account, "cut_points_set", None, basal_end=body.basal_end, apical_start=body.apical_start)
        return result

    @router.get("/labels", summary="Slice positions derived from the cut points")
    def labels(user=user_role):
        pairs = service.store.derived_labels()
        return {"labels": [{**item_json(it), "position": position} for it, position in pairs]}

    mount_first(app, router, "ranking")

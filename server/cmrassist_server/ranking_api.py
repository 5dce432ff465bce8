"""Slice-position ranking endpoints under ``/ranking`` on the MONAI Label app, with thumbnails of the slices.

Endpoints are plain (not async) functions: FastAPI runs them on its thread pool, so SQLite work and image
reading never block the server's event loop.
"""

import base64
import io
import logging
import os
from typing import Callable, Dict, List, Optional

import numpy as np
import SimpleITK as sitk
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel

from .imageio import Orientation, frames_of
from .ranking_store import BATCH_SIZE, Item, RankingError, RankingStore
from .routes import mount_first

logger = logging.getLogger(__name__)

THUMBNAIL_PX = 128
THUMBNAIL_MM = 110.0  # square field of view around the heart: both ventricles at any level


class BatchRequest(BaseModel):
    annotator: str
    expertise: str = "expert"
    thumbnails: bool = True  # False: ids only; fetch each PNG from /ranking/thumbnail (in parallel)


class SubmitRequest(BaseModel):
    batch: str
    annotator: str
    order: List[int]
    seconds: Optional[float] = None


class CutPoints(BaseModel):
    basal_end: float
    apical_start: float


class RankingService:
    """The ranking store plus what it needs from the datastore: which slices exist and what they look like.

    Args:
        store: the ranking database.
        datastore: returns the app's datastore.
        thumbnails: folder for cached PNG thumbnails.
    """

    def __init__(self, store: RankingStore, datastore: Callable, thumbnails: str):
        self.store = store
        self.datastore = datastore
        self.thumbnails = thumbnails
        os.makedirs(thumbnails, exist_ok=True)

    def sync(self) -> int:
        """Register every slice of every stored frame (each frame of a 4D cine too); returns how many were new."""
        ds = self.datastore()
        added = 0
        for image_id in ds.list_images():
            reader = sitk.ImageFileReader()
            reader.SetFileName(ds.get_image_uri(image_id))
            try:
                reader.ReadImageInformation()
            except RuntimeError as e:
                logger.warning(f"ranking: cannot read {image_id}: {e}")
                continue
            if reader.GetDimension() not in (3, 4):
                continue
            slice_k = 2 - Orientation.of(_header_image(reader)).axes[0]
            if reader.GetDimension() == 4:  # frames 1..n of a cine
                for frame in range(1, reader.GetSize()[3] + 1):
                    added += self.store.add_items(image_id, frame, reader.GetSize()[slice_k])
                continue
            frame = int((ds.get_image_info(image_id) or {}).get("frame") or 1)
            added += self.store.add_items(image_id, frame, reader.GetSize()[slice_k])
        return added

    def thumbnail(self, item: Item) -> str:
        """Base64 PNG of the item's slice, windowed and cropped around the heart (cached on disk)."""
        path = os.path.join(self.thumbnails, f"{item.image_id}_f{item.frame}_s{item.slice}.png")
        if not os.path.isfile(path):
            ds = self.datastore()
            image = sitk.ReadImage(ds.get_image_uri(item.image_id))
            orientation = Orientation.of(image)
            frames = frames_of(image)
            index = item.frame - 1 if len(frames) > 1 else 0  # a 3D study's frame number is its cine frame
            stack = orientation.to_canonical(frames[min(max(index, 0), len(frames) - 1)])
            label_path = ds.get_label_uri(item.image_id, "final")
            centre = None
            if label_path and os.path.isfile(label_path):
                label = sitk.GetArrayFromImage(sitk.ReadImage(label_path))
                label = orientation.to_canonical(label if label.ndim == 3 else label[min(max(index, 0), len(label) - 1)])
                fg = np.argwhere(label > 0)
                centre = fg[:, 1:].mean(0) if len(fg) else None
            png = render_thumbnail(stack[item.slice], orientation.spacing[1:], centre)
            tmp = path + ".partial"
            with open(tmp, "wb") as f:
                f.write(png)
            os.replace(tmp, path)
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()


def _header_image(reader: sitk.ImageFileReader) -> sitk.Image:
    """A 1-voxel image carrying the file's spacing and direction (for :class:`Orientation`)."""
    image = sitk.Image([1] * reader.GetDimension(), sitk.sitkUInt8)
    image.SetSpacing(reader.GetSpacing())
    image.SetDirection(reader.GetDirection())
    return image


def render_thumbnail(slice_2d: np.ndarray, spacing_rc, centre=None) -> bytes:
    """8-bit PNG of one slice: 1-99 percentile window, ``THUMBNAIL_MM`` square around ``centre`` (image centre if None)."""
    from PIL import Image

    rows, cols = slice_2d.shape
    cy, cx = centre if centre is not None else (rows / 2, cols / 2)
    half_r, half_c = THUMBNAIL_MM / 2 / spacing_rc[0], THUMBNAIL_MM / 2 / spacing_rc[1]
    ys = np.clip(np.linspace(cy - half_r, cy + half_r, THUMBNAIL_PX).round().astype(int), 0, rows - 1)
    xs = np.clip(np.linspace(cx - half_c, cx + half_c, THUMBNAIL_PX).round().astype(int), 0, cols - 1)
    crop = slice_2d[np.ix_(ys, xs)].astype(np.float32)
    lo, hi = np.percentile(slice_2d, (1, 99))
    grey = np.clip((crop - lo) / max(hi - lo, 1e-6), 0, 1)
    out = io.BytesIO()
    Image.fromarray((grey * 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _item_json(item: Item) -> Dict:
    return {"id": item.id, "image": item.image_id, "frame": item.frame, "slice": item.slice, "rating": round(item.rating, 1),
            "mu": round(item.mu, 4), "sigma": round(item.sigma, 4), "views": item.views,
            "volatility": round(item.volatility, 4)}


def install_ranking_routes(app: FastAPI, service: RankingService) -> None:
    """Add the ``/ranking`` routes (in front of MONAI Label's, which have no such prefix)."""
    from monailabel.config import settings
    from monailabel.endpoints.user.auth import RBAC, User

    annotator = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR))
    reviewer = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_REVIEWER))
    user_role = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))
    router = APIRouter(prefix=settings.MONAI_LABEL_API_STR + "/ranking", tags=["Ranking"])

    def guarded(fn):
        try:
            return fn()
        except RankingError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None

    @router.post("/batch", summary="Next batch of 8 slices to order from most basal to most apical")
    def next_batch(body: BatchRequest, user: User = annotator):
        if service.store.count() < BATCH_SIZE:
            service.sync()
        batch = guarded(lambda: service.store.next_batch(body.annotator, body.expertise))
        return {"batch": batch.id, "expires": batch.expires, "annotator": batch.annotator,
                "items": [{**_item_json(it), **({"thumbnail_png": service.thumbnail(it)} if body.thumbnails else {})}
                          for it in batch.items]}

    @router.post("/submit", summary="Submit a batch ordered from most basal to most apical")
    def submit(body: SubmitRequest, user: User = annotator):
        return guarded(lambda: service.store.submit(body.batch, body.annotator, body.order, seconds=body.seconds))

    @router.post("/sync", summary="Register the slices of studies added since the last sync")
    def sync(user: User = reviewer):
        return {"added": service.sync(), "items": service.store.count()}

    @router.get("/progress", summary="Items with enough views, batches per annotator")
    def progress(user: User = user_role):
        return service.store.progress()

    @router.get("/ordered", summary="Every slice from most basal to most apical")
    def ordered(user: User = reviewer):
        return {"items": [_item_json(it) for it in service.store.ordered()], "cut_points": service.store.cut_points()}

    @router.get("/thumbnail", summary="PNG of one ranked slice", response_class=Response)
    def thumbnail(item: int, user: User = user_role):
        found = service.store.items([item])
        if not found:
            raise HTTPException(status_code=404, detail=f"unknown ranking item {item}")
        return Response(content=base64.b64decode(service.thumbnail(found[0])), media_type="image/png")

    @router.get("/cut_points")
    def get_cut_points(user: User = user_role):
        return service.store.cut_points() or {}

    @router.put("/cut_points", summary="Ratings where 'too basal' ends and 'too apical' begins")
    def put_cut_points(body: CutPoints, user: User = reviewer):
        return guarded(lambda: service.store.set_cut_points(body.basal_end, body.apical_start))

    @router.get("/labels", summary="Slice positions derived from the cut points")
    def labels(user: User = user_role):
        pairs = guarded(service.store.derived_labels)
        return {"labels": [{**_item_json(it), "position": position} for it, position in pairs]}

    mount_first(app, router)

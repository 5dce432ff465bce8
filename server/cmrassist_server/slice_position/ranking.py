"""The ranking service: the ranking store plus the datastore's slices and their thumbnails."""

import base64
import io
import logging
import os
from typing import Callable, Dict

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.checkpoints import atomic_write_bytes
from cmrassist_server.imaging.imageio import Orientation, frames_of
from cmrassist_server.slice_position.ranking_store import Item, RankingStore

logger = logging.getLogger(__name__)

THUMBNAIL_PX = 128
THUMBNAIL_MM = 110.0  # square field of view around the heart: both ventricles at any level


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
        """Register every slice of every stored frame (each frame of a 4D cine too); returns how many were new.

        A study that cannot be read (or whose info is damaged) is logged and skipped: it never stops a start.
        """
        ds = self.datastore()
        added = 0
        for image_id in ds.list_images():
            try:
                added += self._register(ds, image_id)
            except (RuntimeError, ValueError, TypeError, OSError) as e:
                logger.warning(f"ranking: study {image_id} skipped: {e}")
        return added

    def _register(self, ds, image_id: str) -> int:
        reader = sitk.ImageFileReader()
        reader.SetFileName(ds.get_image_uri(image_id))
        reader.ReadImageInformation()
        if reader.GetDimension() not in (3, 4):
            return 0
        slice_k = 2 - Orientation.of(_header_image(reader)).axes[0]
        if reader.GetDimension() == 4:  # frames 1..n of a cine
            return sum(
                self.store.add_items(image_id, frame, reader.GetSize()[slice_k])
                for frame in range(1, reader.GetSize()[3] + 1)
            )
        frame = int((ds.get_image_info(image_id) or {}).get("frame") or 1)
        return self.store.add_items(image_id, frame, reader.GetSize()[slice_k])

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
                label = orientation.to_canonical(
                    label if label.ndim == 3 else label[min(max(index, 0), len(label) - 1)]
                )
                fg = np.argwhere(label > 0)
                centre = fg[:, 1:].mean(0) if len(fg) else None
            png = render_thumbnail(stack[item.slice], orientation.spacing[1:], centre)
            atomic_write_bytes(path, png)
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


def item_json(item: Item) -> Dict:
    return {
        "id": item.id,
        "image": item.image_id,
        "frame": item.frame,
        "slice": item.slice,
        "rating": round(item.rating, 1),
        "mu": round(item.mu, 4),
        "sigma": round(item.sigma, 4),
        "views": item.views,
        "volatility": round(item.volatility, 4),
    }

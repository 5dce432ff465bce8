"""Infer task ``propagate``: one labelled frame of a 4D cine carried to every other frame by registration."""

import os
import tempfile
import time
from typing import Dict, Optional

import numpy as np
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from cmrassist_server.annotations.propagation import PropagationOptions, propagate_cine, through_plane_model
from cmrassist_server.api.infer_params import PropagateParams
from cmrassist_server.core.checkpoints import ServedModel
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import check_id
from cmrassist_server.imaging.imageio import Orientation, check_label, read_image, write_label_like
from CMRAssistCore.labels import CARDIAC_CLASSES


class PropagateInferTask(InferTask):
    """``POST /infer/propagate?image=CINE`` with params ``source`` (a frame study with a ``final`` label; found by
    the server when omitted: the ED frame's, else the first labelled frame's) and ``store`` (keep the result as the
    cine's label tagged ``propagated``, which training can use with ``propagated=true``).

    Args:
        options: registration settings.
        segmentation: the served segmentation model: each propagated frame is checked through-plane against its
            labels (``annotations/propagation.through_plane_check``); without one (none trained yet), registration
            alone.
    """

    #: The params this task reads, checked before it runs (``api/infer_params.py``).
    PARAMS = PropagateParams

    #: Writing options (``api/infer.decide_writes``): ``store`` keeps the result under the ``propagated`` tag.
    WRITES = {"store": "propagated"}

    def __init__(self, options: PropagationOptions = PropagationOptions(), segmentation: Optional[ServedModel] = None):
        super().__init__(
            type=InferType.SEGMENTATION,
            labels=dict(CARDIAC_CLASSES),
            dimension=3,
            description="Propagate one frame's label to every frame of a cine (slice-wise "
            "diffeomorphic demons, nearest-neighbour label warping)",
            config={"source": "", "store": False, "through_plane": True},
        )
        self.options = options
        self.segmentation = segmentation

    def is_valid(self) -> bool:
        return True

    def context(self, request: Dict, image_id: Optional[str], datastore: Datastore) -> Dict:
        """The labelled frame to propagate (resolved on the server: never a path a client sent)."""
        if image_id is None:
            raise CMRAssistError(
                "propagation works on a stored cine (its labelled frame is found in the datastore): "
                "upload the cine as a study first",
                422,
            )
        return labelled_frame(request.get("source") or None, image_id, datastore)

    def __call__(self, request):
        context = request.get("cmrassist") or {}
        cine = read_image(request["image"])
        if cine.GetDimension() != 4:
            raise CMRAssistError("propagation needs a 4D cine; this image is one 3D frame", 422)
        if not context.get("source_label"):
            raise CMRAssistError(
                "no labelled frame of this cine was found: segment and submit one frame (usually ED) "
                "first, or name it with the 'source' param",
                409,
            )
        frame = int(context["source_frame"])
        if not 1 <= frame <= cine.GetSize()[3]:
            raise CMRAssistError(f"the source frame {frame} is outside the cine's 1-{cine.GetSize()[3]}", 422)
        source = check_label(read_image(context["source_label"]), read_image(context["source_image"]))
        if source.shape != tuple(reversed(cine.GetSize()[:3])):
            raise CMRAssistError("the source label's grid is not the cine's", 422)
        start = time.time()
        predictor, through_plane = through_plane_model(self.segmentation, request.get("through_plane", True))
        orientation = Orientation.of(cine)
        segment = (lambda f: predictor.segment_frame(f, orientation)) if predictor is not None else None
        labels = propagate_cine(cine, source.astype(np.uint8), frame - 1, options=self.options, segment=segment)
        fd, out = tempfile.mkstemp(suffix=".nii.gz")  # MONAI Label sends the file, then removes it
        os.close(fd)
        write_label_like(labels, cine, out)
        return out, {
            "label_names": dict(CARDIAC_CLASSES),
            "frames": int(labels.shape[0]),
            "source": context.get("source"),
            "source_frame": frame,
            "through_plane": through_plane,
            "seconds": round(time.time() - start, 2),
        }


def _final_label(datastore: Datastore, image_id: str) -> Optional[str]:
    path = datastore.get_label_uri(image_id, "final")
    return path if path and os.path.isfile(path) else None


def labelled_frame(source: Optional[str], cine_id: str, datastore: Datastore) -> Dict:
    """The frame study to propagate from: ``source`` when named, else the cine's ED frame study, else the first
    labelled one; ``{}`` when no frame of the cine is labelled."""
    cine = datastore.get_image_info(cine_id) or {}
    if source:
        check_id(str(source), "source study id")
        datastore.get_image_uri(source)  # 404 for unknown ids
        if not _final_label(datastore, source):
            raise CMRAssistError(f"study {source!r} has no final label to propagate", 404)
        candidates = [source]
    else:
        frames = {}  # labelled frame studies of this cine -> their frame number
        for image_id in datastore.list_images():
            info = datastore.get_image_info(image_id) or {}
            mine = info.get("source_image") == cine_id or (
                cine.get("patient") and info.get("patient") == cine.get("patient") and info.get("frame")
            )
            if image_id != cine_id and mine and _final_label(datastore, image_id):
                frames[image_id] = int(info.get("frame") or 0)
        ed = cine.get("ed_frame")
        candidates = sorted(frames, key=lambda i: (frames[i] != ed, frames[i], i))
    if not candidates:
        return {}
    chosen = candidates[0]
    frame = (datastore.get_image_info(chosen) or {}).get("frame")
    if not frame:
        raise CMRAssistError(f"study {chosen!r} does not say which cine frame it is", 422)
    return {
        "source": chosen,
        "source_frame": int(frame),
        "source_label": _final_label(datastore, chosen),
        "source_image": datastore.get_image_uri(chosen),
    }

"""Infer task ``propagate``: one labelled frame of a 4D cine carried to every other frame by registration."""

import logging
import tempfile
import time

import numpy as np
from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from CMRAssistCore.labels import CARDIAC_CLASSES
from cmrassist_server.imageio import InvalidInputError, check_label, read_image, write_label_like
from cmrassist_server.propagation import PropagationOptions, propagate_cine

logger = logging.getLogger(__name__)


class PropagateInferTask(InferTask):
    """``POST /infer/propagate?image=CINE`` with params ``source`` (a frame study with a ``final`` label; found by
    the server when omitted: the ED frame's, else the first labelled frame's) and ``store`` (keep the result as the
    cine's label tagged ``propagated``, which training can use with ``propagated=true``).

    Args:
        options: registration settings.
    """

    def __init__(self, options: PropagationOptions = PropagationOptions()):
        super().__init__(type=InferType.SEGMENTATION, labels=dict(CARDIAC_CLASSES), dimension=3,
                         description="Propagate one frame's label to every frame of a cine (slice-wise "
                         "diffeomorphic demons, nearest-neighbour label warping)", config={"source": "", "store": False})
        self.options = options

    def is_valid(self) -> bool:
        return True

    def __call__(self, request):
        context = request.get("cmrassist") or {}
        try:
            cine = read_image(request["image"])
            if cine.GetDimension() != 4:
                raise InvalidInputError("propagation needs a 4D cine; this image is one 3D frame", status=422)
            if not context.get("source_label"):
                raise InvalidInputError("no labelled frame of this cine was found: segment and submit one frame "
                                        "(usually ED) first, or name it with the 'source' param", status=409)
            frame = int(context["source_frame"])
            if not 1 <= frame <= cine.GetSize()[3]:
                raise InvalidInputError(f"the source frame {frame} is outside the cine's 1-{cine.GetSize()[3]}", status=422)
            label = read_image(context["source_label"])
            source = check_label(label, read_image(context["source_image"]))
            if source.shape != tuple(reversed(cine.GetSize()[:3])):
                raise InvalidInputError("the source label's grid is not the cine's", status=422)
        except InvalidInputError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None
        start = time.time()
        labels = propagate_cine(cine, source.astype(np.uint8), frame - 1, options=self.options)
        out = tempfile.NamedTemporaryFile(suffix=".nii.gz", delete=False).name
        write_label_like(labels, cine, out)
        return out, {"label_names": dict(CARDIAC_CLASSES), "frames": int(labels.shape[0]), "source": context.get("source"),
                     "source_frame": frame, "seconds": round(time.time() - start, 2)}

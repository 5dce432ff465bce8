"""What a segmentation pass thought of a frame, kept for the QC so that checking a frame costs no further pass.

A predictor runs one or more passes over a frame's network window (one model; or an ensemble's members, each
as is and flipped). Their mean is what it segments with; how far the passes stray from that mean shows where it
is unsure. The QC's view (``qc/model_view.py``) is every model as is and left-right flipped (:data:`VIEW_FLIPS`):
their mean and their spread, on the resampled stack's whole grid. Batch work's ensemble runs those passes anyway
(with an up-down flip too, which the view leaves out); one-click's single pass lacks the flip, which the QC adds.
The predictor keeps the views of the frames it segmented last, keyed by their resampled stack, so the QC of a
frame just segmented (one-click, then QC; a cohort run) runs no pass it already ran; a frame not seen is run
through the same passes.
"""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from cmrassist_server.imaging.preprocess import CropBox, undo_crop_or_pad

#: The QC's view: every model (an ensemble's every member) as is and left-right flipped, flips of ``(slices, C,
#: H, W)`` inputs. One model's single pass says nothing of its own uncertainty; its flip does, and the QC was
#: always trained with it.
VIEW_FLIPS = ((), (3,))
#: Frames whose views a predictor keeps by default (a subject's ED and ES several times over; 1-3 MB each).
KEPT_VIEWS = 16


@dataclass
class ModelView:
    """What the segmentation models think of a frame, on its resampled stack's grid.

    Args:
        probs: ``(slices, classes, H, W)`` float16 mean softmax over every pass (members x flips).
        disagreement: ``(slices, classes)`` mean over passes of ``sum |pass - mean| / (sum pass + sum mean + 1)``
            (``1 - Dice`` for hard maps, 0 for identical soft ones): the ensemble's members (and the flips)
            disagree most where a model is least reliable. Zero for a single pass.
    """

    probs: np.ndarray
    disagreement: np.ndarray


@dataclass(frozen=True)
class WindowView:
    """A view as the passes left it: on the network window, with where that window sits."""

    #: Half precision, for checking as for training (where every frame's maps are kept in memory); torch rounds
    #: to half exactly as numpy does (nearest even) but several times faster on these maps.
    mean: torch.Tensor
    disagreement: torch.Tensor
    box: CropBox

    def on_stack(self) -> ModelView:
        """The view on the whole resampled grid: background wherever the window did not reach."""
        back = undo_crop_or_pad(self.mean, self.box)
        back[:, 0] += undo_crop_or_pad(torch.zeros(self.mean.shape[-2:], dtype=back.dtype), self.box, fill=1.0)
        return ModelView(back.contiguous().numpy(), self.disagreement.numpy().astype(np.float32))


@dataclass(frozen=True)
class PendingView:
    """A view whose passes are not all run yet: those of the segmentation's ``passes`` (over its input
    ``window``) the view takes, kept until a QC asks and the predictor adds the flips it lacks."""

    window: torch.Tensor
    passes: torch.Tensor
    box: CropBox


def window_view(passes: torch.Tensor, mean: torch.Tensor, box: CropBox) -> WindowView:
    """The view of ``(passes, slices, classes, h, w)`` softmax maps of one frame's window at ``box`` and their
    ``mean``.

    Outside the window every pass says background with certainty: there they agree, and the background's
    probability mass there joins the disagreement's denominator, so that it is what the whole grid would give
    (the window's own parts beyond the grid, where it was padded, are left out as the labels leave them out).
    """
    (h, w), (bh, bw) = box.source, box.size
    rows = slice(max(0, -box.top), max(0, min(bh, h - box.top)))
    cols = slice(max(0, -box.left), max(0, min(bw, w - box.left)))
    inside, inside_mean = passes[..., rows, cols], mean[..., rows, cols]
    outside = torch.zeros(passes.shape[2])
    outside[0] = 2.0 * (h * w - inside.shape[-2] * inside.shape[-1])
    spread = (inside - inside_mean).abs().sum((-2, -1))
    spread = spread / (inside.sum((-2, -1)) + inside_mean.sum((-2, -1)) + outside + 1.0)
    return WindowView(mean.half(), spread.mean(0), box)


def stack_key(stack: np.ndarray) -> str:
    """The key of a resampled ``(slices, H, W)`` stack: the same frame, preprocessed alike, gives the same key."""
    digest = hashlib.blake2b(np.ascontiguousarray(stack).tobytes(), digest_size=16)
    digest.update(repr((stack.shape, str(stack.dtype))).encode())
    return digest.hexdigest()


class ViewCache:
    """The views of the last :data:`KEPT_VIEWS` frames a predictor segmented (thread-safe; least recent out)."""

    def __init__(self, size: int = KEPT_VIEWS):
        #: How many views are kept; batch work raises it to the frames it segments before checking them.
        self.size = size
        self._views: OrderedDict[str, WindowView] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, view: Union[WindowView, PendingView]) -> None:
        with self._lock:
            self._views[key] = view
            self._views.move_to_end(key)
            while len(self._views) > self.size:
                self._views.popitem(last=False)

    def get(self, key: str) -> Optional[Union[WindowView, PendingView]]:
        with self._lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
            return view

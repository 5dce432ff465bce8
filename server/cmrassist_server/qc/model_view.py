"""What the segmentation network thinks of a frame, as extra QC inputs: its class probabilities (the mean of the
segmentation pass's passes: each model as is and left-right flipped, ``segmentation/views.py``) beside the
checked label, per slice how well the label agrees with them, and how much the passes disagree among themselves.

A QC network trained from scratch on a CPU learns slowly what a good segmentation looks like; the segmentation
network already knows. Where the checked label departs from what the network believes, or where the network
itself is unsure, quality is likely low. The same functions build these inputs for training and for checking, and
the view is the segmentation pass's own: the QC of a frame just segmented runs no network pass of its own.
"""

import math
from typing import Optional, Tuple

import numpy as np
import torch

from cmrassist_server.imaging.preprocess import crop_or_pad
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from cmrassist_server.segmentation.views import ModelView, window_view
from CMRAssistCore.measures import mask_dice

NUM_CLASSES = 4
#: Per slice: soft Dice of the label with the probabilities, then hard Dice with the network's labels, per class.
FEATURES = 2 * NUM_CLASSES
#: The view QC models are trained on now: the segmentation pass's own (``SegmentationPredictor.stack_view``).
SEGMENTATION_PASS = "segmentation-pass"
#: The view of QC models published before it (their checkpoints name no view): every network on whole slices.
FULL_SLICE = "full-slice"


@torch.no_grad()
def full_slice_view(predictor: SegmentationPredictor, stack: np.ndarray) -> ModelView:
    """The view a :data:`FULL_SLICE` QC model was trained on: one network in PyTorch on the whole slices of a
    resampled ``(slices, H, W)`` stack, padded to the network's stride, as is and left-right flipped. It runs its
    own passes: such a QC model costs them until it is retrained on the segmentation pass. Of an ensemble, the
    first member alone: such a QC learnt one network's view, and every member's would cost batch work ten
    whole-slice passes per frame."""
    pre = predictor.preprocessor
    inputs = pre.input_channels(stack, predictor.prior)
    h, w = inputs.shape[-2:]
    m = pre.config.size_multiple
    window, box = crop_or_pad(inputs, (h / 2, w / 2), (math.ceil(h / m) * m, math.ceil(w / m) * m))
    x = torch.from_numpy(np.ascontiguousarray(window))
    network = getattr(predictor, "members", [predictor.model])[0]  # PyTorch, never the engine: as it was trained
    passes = predictor.window_passes(x, flips=((), (3,)), runners=[network])
    return window_view(passes, passes.mean(0), box).on_stack()


def agreement(
    label_window: np.ndarray, probs_window: np.ndarray, disagreement: Optional[np.ndarray] = None
) -> np.ndarray:
    """``(slices, FEATURES)``: per class, the soft Dice of the label with the probabilities, then the Dice of the
    label with the network's own labels (1 where a class is in neither); then ``disagreement`` when given."""
    onehot = np.stack([label_window == c for c in range(NUM_CLASSES)], axis=1).astype(np.float32)
    top = probs_window.argmax(1)  # once, not per class
    hard = np.stack([top == c for c in range(NUM_CLASSES)], axis=1).astype(np.float32)
    parts = [_dice(onehot, probs_window), _dice(onehot, hard)]
    if disagreement is not None:
        parts.append(disagreement)
    return np.concatenate(parts, axis=1).astype(np.float32)


def _dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Soft Dice per slice and class over the window (the one Dice, ``CMRAssistCore.measures.mask_dice``)."""
    return mask_dice(a, b, axis=(-2, -1), eps=1e-6)


def window_inputs(
    probs: np.ndarray,
    label_window: np.ndarray,
    center: Tuple[float, float],
    window: int,
    disagreement: Optional[np.ndarray] = None,
):
    """The probability channels cropped to the QC window at ``center``, and the agreement features."""
    probs_window, _ = crop_or_pad(probs, center, (window, window))
    probs_window = probs_window.astype(np.float32)  # exact; numpy's argmax and products are faster in it than half
    return probs_window, agreement(label_window, probs_window, disagreement)

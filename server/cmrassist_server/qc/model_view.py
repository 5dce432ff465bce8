"""What the segmentation network thinks of a frame, as extra QC inputs: its class probabilities (averaged over a
left-right flip, and over an ensemble's members) beside the checked label, per slice how well the label agrees
with them, and how much the passes disagree among themselves.

A QC network trained from scratch on a CPU learns slowly what a good segmentation looks like; the segmentation
network already knows. Where the checked label departs from what the network believes, or where the network
itself is unsure, quality is likely low. The same functions build these inputs for training and for checking.
"""

from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from cmrassist_server.imaging.preprocess import CardiacPreprocessor, crop_or_pad, undo_crop_or_pad
from cmrassist_server.segmentation.network import SegmentationModel
from CMRAssistCore.measures import mask_dice

NUM_CLASSES = 4
#: Per slice: soft Dice of the label with the probabilities, then hard Dice with the network's labels, per class.
FEATURES = 2 * NUM_CLASSES


@dataclass
class ModelView:
    """What the segmentation models think of a frame.

    Args:
        probs: ``(slices, classes, H, W)`` float16 mean softmax over every pass (members x left-right flip).
        disagreement: ``(slices, classes)`` mean over passes of ``sum |pass - mean| / (sum pass + sum mean)``
            (``1 - Dice`` for hard maps, 0 for identical soft ones): the ensemble's members (and the flips)
            disagree most where a model is least reliable.
    """

    probs: np.ndarray
    disagreement: np.ndarray


def model_view(models: Sequence[SegmentationModel], stack: np.ndarray, spacing_mm: float, device: str) -> ModelView:
    """The mean probabilities and per-slice disagreement of ``models`` (one, or an ensemble's members) on a
    resampled ``(slices, H, W)`` stack, each model run as it is and left-right flipped.

    Raises:
        ValueError: no model, or a model that sees another in-plane spacing than the stack has.
    """
    if not models:
        raise ValueError("a model view needs at least one segmentation model")
    passes = [p for model in models for p in _passes(model, stack, spacing_mm, device)]
    mean = torch.stack(passes).mean(0)
    spread = torch.stack([_departure(p, mean) for p in passes]).mean(0)
    # Half precision, here for checking as for training (where every frame's maps are kept in memory); torch
    # rounds to half exactly as numpy does (nearest even) but several times faster on these maps.
    return ModelView(mean.half().contiguous().numpy(), spread.numpy().astype(np.float32))


def model_probabilities(model: SegmentationModel, stack: np.ndarray, spacing_mm: float, device: str) -> np.ndarray:
    """``(slices, classes, H, W)`` float16 softmax of one ``model``, averaged with its left-right flipped pass."""
    return model_view([model], stack, spacing_mm, device).probs


@torch.no_grad()
def _passes(model: SegmentationModel, stack: np.ndarray, spacing_mm: float, device: str) -> List[torch.Tensor]:
    """The model's softmax on the whole slices (padded to the network's stride), as is and left-right flipped."""
    if abs(model.preprocess.spacing_mm - spacing_mm) > 1e-6:
        raise ValueError(f"the segmentation model works at {model.preprocess.spacing_mm} mm, the QC at {spacing_mm} mm")
    pre = CardiacPreprocessor(replace(model.preprocess))
    inputs = pre.input_channels(stack, model.prior)
    h, w = inputs.shape[-2:]
    multiple = pre.config.size_multiple
    size = (int(np.ceil(h / multiple) * multiple), int(np.ceil(w / multiple) * multiple))
    window, box = crop_or_pad(inputs, (h / 2, w / 2), size)
    x = torch.from_numpy(np.ascontiguousarray(window))
    network = model.network.eval()
    plain, flipped = [], []
    for start in range(0, len(x), 16):
        batch = x[start : start + 16].to(device)
        plain.append(torch.softmax(network(batch), 1).float().cpu())
        flipped.append(torch.flip(torch.softmax(network(torch.flip(batch, (-1,))), 1), (-1,)).float().cpu())
    return [undo_crop_or_pad(torch.cat(p), box) for p in (plain, flipped)]


def _departure(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(slices, classes)`` normalised L1 distance of two probability maps, in [0, 1]. One pixel's worth of
    probability is added below the line, so a class both maps leave (nearly) empty counts as agreed on."""
    return (a - b).abs().sum((-2, -1)) / (a.sum((-2, -1)) + b.sum((-2, -1)) + 1.0)


def agreement(
    label_window: np.ndarray, probs_window: np.ndarray, disagreement: Optional[np.ndarray] = None
) -> np.ndarray:
    """``(slices, FEATURES)``: per class, the soft Dice of the label with the probabilities, then the Dice of the
    label with the network's own labels (1 where a class is in neither); then ``disagreement`` when given."""
    onehot = np.stack([label_window == c for c in range(NUM_CLASSES)], axis=1).astype(np.float32)
    hard = np.stack([probs_window.argmax(1) == c for c in range(NUM_CLASSES)], axis=1).astype(np.float32)
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
    return probs_window.astype(np.float32), agreement(label_window, probs_window, disagreement)

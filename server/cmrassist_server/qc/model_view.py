"""What the segmentation network thinks of a frame, as extra QC inputs: its class probabilities (averaged over a
left-right flip) beside the checked label, and per slice how well the label agrees with them.

A QC network trained from scratch on a CPU learns slowly what a good segmentation looks like; the segmentation
network already knows. Where the checked label departs from what the network believes, or where the network
itself is unsure, quality is likely low. The same functions build these inputs for training and for checking.
"""

from dataclasses import replace
from typing import Tuple

import numpy as np
import torch

from cmrassist_server.imaging.preprocess import CardiacPreprocessor, crop_or_pad, undo_crop_or_pad
from cmrassist_server.segmentation.network import SegmentationModel
from CMRAssistCore.measures import mask_dice

NUM_CLASSES = 4
#: Per slice: soft Dice of the label with the probabilities, then hard Dice with the network's labels, per class.
FEATURES = 2 * NUM_CLASSES


@torch.no_grad()
def model_probabilities(model: SegmentationModel, stack: np.ndarray, spacing_mm: float, device: str) -> np.ndarray:
    """``(slices, classes, H, W)`` float16 softmax of ``model`` on a resampled ``(slices, H, W)`` stack (whole
    slices, padded to the network's stride), averaged with its left-right flipped pass.

    Raises:
        ValueError: the model sees another in-plane spacing than the stack has.
    """
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
    outs = []
    for start in range(0, len(x), 16):
        batch = x[start : start + 16].to(device)
        p = torch.softmax(network(batch), 1) + torch.flip(torch.softmax(network(torch.flip(batch, (-1,))), 1), (-1,))
        outs.append((p / 2).float().cpu())
    # Half precision, here for checking as for training (where every frame's maps are kept in memory); torch
    # rounds to half exactly as numpy does (nearest even) but several times faster on these maps.
    return undo_crop_or_pad(torch.cat(outs).half(), box).contiguous().numpy()


def agreement(label_window: np.ndarray, probs_window: np.ndarray) -> np.ndarray:
    """``(slices, FEATURES)``: per class, the soft Dice of the label with the probabilities, then the Dice of the
    label with the network's own labels (1 where a class is in neither)."""
    onehot = np.stack([label_window == c for c in range(NUM_CLASSES)], axis=1).astype(np.float32)
    hard = np.stack([probs_window.argmax(1) == c for c in range(NUM_CLASSES)], axis=1).astype(np.float32)
    return np.concatenate([_dice(onehot, probs_window), _dice(onehot, hard)], axis=1).astype(np.float32)


def _dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Soft Dice per slice and class over the window (the one Dice, ``CMRAssistCore.measures.mask_dice``)."""
    return mask_dice(a, b, axis=(-2, -1), eps=1e-6)


def window_inputs(probs: np.ndarray, label_window: np.ndarray, center: Tuple[float, float], window: int):
    """The probability channels cropped to the QC window at ``center``, and the agreement features."""
    probs_window, _ = crop_or_pad(probs, center, (window, window))
    return probs_window.astype(np.float32), agreement(label_window, probs_window)

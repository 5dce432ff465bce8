"""Preprocessing written once and shared by inference and training, with its exact inverse.

Steps: canonical orientation -> robust intensity normalisation -> in-plane resampling to a fixed spacing ->
crop or pad around a centre (the heart for training patches, the image centre for inference).
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from cmrassist_server.imaging.imageio import Orientation
from CMRAssistCore.labels import BACKGROUND, LV_MYOCARDIUM


@dataclass(frozen=True)
class PreprocessConfig:
    """Fixed preprocessing choices; saved with each checkpoint so inference matches training.

    Args:
        spacing_mm: in-plane spacing the network sees.
        patch_size: training patch edge in pixels (at ``spacing_mm``).
        size_multiple: inference inputs are padded to a multiple of this (the U-Net's total stride).
        infer_window: largest inference window edge (pixels); larger slices are cropped around their centre,
            which still holds the heart in short-axis views (288 mm at 1.5 mm) and keeps CPU latency low.
        percentiles: intensity percentiles mapped to 0 and 1.
        neighbour_slices: slices on each side of a slice that the network also sees (2.5D input: 1 gives the
            slice above and the one below as extra channels; the ends of the stack repeat the end slice).
        myocardium_odds: where the network's top class is the myocardium, it stays myocardium only if its
            probability is at least this many times the background's, else it takes the most probable other class
            (1: the plain top class; ``label_map``). The recipe draws the epicardium too far out; cross-validation
            chooses this (``release/calibration.py``).
    """

    spacing_mm: float = 1.5
    patch_size: int = 144
    size_multiple: int = 16
    infer_window: int = 192
    percentiles: Tuple[float, float] = (0.5, 99.5)
    neighbour_slices: int = 0
    myocardium_odds: float = 1.0

    def input_count(self, prior: Optional[Any] = None) -> int:
        """Network input channels: the slice, its neighbours, and a prior's channel when there is one."""
        return 1 + 2 * self.neighbour_slices + (prior is not None)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "PreprocessConfig":
        """The config saved in a checkpoint (JSON-like: tuples come back as lists)."""
        return cls(**{**values, "percentiles": tuple(values["percentiles"])})


@dataclass(frozen=True)
class CropBox:
    """Where a crop-or-pad window sits on its source grid: top-left offset (may be negative) and both sizes."""

    top: int
    left: int
    size: Tuple[int, int]
    source: Tuple[int, int]


@dataclass(frozen=True)
class StackContext:
    """Everything needed to put network outputs back on the input grid of one frame (and, as ``key``, the
    resampled stack's key under which the segmentation pass keeps its view, ``segmentation/views.py``)."""

    orientation: Optional[Orientation]
    canonical_shape: Tuple[int, int, int]
    resampled_hw: Tuple[int, int]
    box: CropBox
    key: str = ""


def normalize_intensity(stack: np.ndarray, percentiles: Tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Map the volume's low/high percentiles to 0/1 (clipped), robust to int16 raw and 0-255 float images."""
    lo, hi = np.percentile(stack, percentiles)
    if hi - lo < 1e-6:
        return np.zeros_like(stack, dtype=np.float32)
    return np.clip((stack - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resampled_size(hw: Tuple[int, int], spacing_hw: Tuple[float, float], target_mm: float) -> Tuple[int, int]:
    return tuple(max(1, int(round(n * s / target_mm))) for n, s in zip(hw, spacing_hw))  # type: ignore[return-value]


def resample_inplane(stack: torch.Tensor, size: Tuple[int, int], *, mode: str = "bilinear") -> torch.Tensor:
    """Resample ``(N, C, H, W)`` to ``size`` in-plane (pixel centres aligned, as ITK does)."""
    if tuple(stack.shape[-2:]) == tuple(size):
        return stack
    if mode == "nearest":
        return F.interpolate(stack, size=size, mode="nearest-exact")
    return F.interpolate(stack, size=size, mode=mode, align_corners=False)


def class_map(scores: torch.Tensor) -> torch.Tensor:
    """Index of the highest score along dim 1 (``argmax(1)`` is about 20x slower on CPU for ``(N, C, H, W)``)."""
    return scores.max(1).indices


def label_map(scores: torch.Tensor, myocardium_odds: float = 1.0) -> torch.Tensor:
    """Labels of ``(N, C, H, W)`` class probabilities: the top class, except that myocardium whose probability is
    under ``myocardium_odds`` times the background's takes the most probable other class. Where background rivals
    the myocardium (the epicardial border) the border moves inward; a pixel the LV cavity or the RV rivals more
    goes to them, so no background gap opens inside the heart."""
    labels = class_map(scores)
    if myocardium_odds != 1.0:
        thin = (labels == LV_MYOCARDIUM) & (scores[:, LV_MYOCARDIUM] < myocardium_odds * scores[:, BACKGROUND])
        others = scores.clone()
        others[:, LV_MYOCARDIUM] = -1.0
        labels[thin] = class_map(others)[thin]
    return labels


def crop_or_pad(array: np.ndarray, center: Tuple[float, float], size: Tuple[int, int]) -> Tuple[np.ndarray, CropBox]:
    """Cut a ``size`` window centred on ``center`` from the last two axes, zero-padding outside the array."""
    h, w = array.shape[-2:]
    top = int(round(center[0] - size[0] / 2))
    left = int(round(center[1] - size[1] / 2))
    out = np.zeros(array.shape[:-2] + tuple(size), dtype=array.dtype)
    sy0, sx0 = max(top, 0), max(left, 0)
    sy1, sx1 = min(top + size[0], h), min(left + size[1], w)
    if sy1 > sy0 and sx1 > sx0:
        out[..., sy0 - top : sy1 - top, sx0 - left : sx1 - left] = array[..., sy0:sy1, sx0:sx1]
    return out, CropBox(top=top, left=left, size=tuple(size), source=(h, w))  # type: ignore[arg-type]


def undo_crop_or_pad(window: torch.Tensor, box: CropBox, fill: float = 0.0) -> torch.Tensor:
    """Put a ``(..., h, w)`` window back on its source grid; areas the window did not cover get ``fill``."""
    (h, w), (bh, bw) = box.source, box.size
    # F.pad with negative widths crops, so one call handles windows larger and smaller than the source.
    pad = (box.left, w - box.left - bw, box.top, h - box.top - bh)
    return F.pad(window, pad, value=fill)


@dataclass(frozen=True)
class HeartWindow:
    """A square network window around the heart, on the resampled stack's grid.

    Args:
        centre: ``(row, column)`` of its centre in pixels.
        size: its edge in pixels (a multiple of the U-Net's total stride).
    """

    centre: Tuple[float, float]
    size: int


class CardiacPreprocessor:
    """The one preprocessing path for inference and training.

    Args:
        config: the fixed preprocessing choices.
    """

    def __init__(self, config: Optional[PreprocessConfig] = None):
        self.config = config or PreprocessConfig()

    def resampled_stack(
        self, frame_zyx: np.ndarray, orientation: Orientation
    ) -> Tuple[np.ndarray, Tuple[int, int, int]]:
        """Canonical, normalised, resampled ``(slices, H, W)`` stack and the canonical shape before resampling."""
        canonical = orientation.to_canonical(frame_zyx)
        norm = normalize_intensity(canonical, self.config.percentiles)
        size = resampled_size(canonical.shape[1:], orientation.spacing[1:], self.config.spacing_mm)
        out = resample_inplane(torch.from_numpy(norm)[:, None], size)[:, 0].numpy()
        return out, canonical.shape  # type: ignore[return-value]

    def resampled_label(self, label_zyx: np.ndarray, orientation: Orientation, num_classes: int = 4) -> np.ndarray:
        """Label resampled like the image: one-hot, bilinear, argmax (smoother than nearest at boundaries)."""
        canonical = orientation.to_canonical(label_zyx).astype(np.int64)
        size = resampled_size(canonical.shape[1:], orientation.spacing[1:], self.config.spacing_mm)
        onehot = F.one_hot(torch.from_numpy(canonical), num_classes).permute(0, 3, 1, 2).float()
        return class_map(resample_inplane(onehot, size)).numpy().astype(np.uint8)

    def input_channels(self, stack: np.ndarray, prior: Optional[Any] = None) -> np.ndarray:
        """``(slices, C, H, W)`` network channels of a resampled stack: the slice, then its neighbours below and
        above (``neighbour_slices``), then the prior's channel.

        The one place where training and inference build the input (neighbours, and the prior through
        ``prior.channel(stack, spacing_mm)``, e.g. ``cam_prior.CamPrior``), so both see the same.
        """
        channels = [stack]
        n = stack.shape[0]
        for k in range(1, self.config.neighbour_slices + 1):
            channels += [stack[np.clip(np.arange(n) - k, 0, n - 1)], stack[np.clip(np.arange(n) + k, 0, n - 1)]]
        if prior is not None:
            channels.append(prior.channel(stack, self.config.spacing_mm))
        return np.stack(channels, axis=1).astype(np.float32)

    def inference_input(
        self,
        frame_zyx: np.ndarray,
        orientation: Orientation,
        *,
        prior: Optional[Any] = None,
        heart: Optional[HeartWindow] = None,
    ) -> Tuple[torch.Tensor, StackContext]:
        """``(slices, C, H, W)`` network input for one frame and the context to invert it.

        Args:
            frame_zyx: the frame's voxels.
            orientation: its geometry.
            prior: the CAM prior whose channel the network takes, if any.
            heart: a window around the heart (``segmentation/heart_window.py``); the stack's centre, up to
                ``infer_window`` pixels, without one.
        """
        stack, canonical_shape = self.resampled_stack(frame_zyx, orientation)
        return self.window_input(self.input_channels(stack, prior), canonical_shape, orientation, heart)

    def window_input(
        self,
        channels: np.ndarray,
        canonical_shape: Tuple[int, int, int],
        orientation: Optional[Orientation],
        heart: Optional[HeartWindow] = None,
    ) -> Tuple[torch.Tensor, StackContext]:
        """The network's window of ``(slices, C, H, W)`` channels (see :meth:`inference_input`)."""
        h, w = channels.shape[-2:]
        if heart is not None:
            centre, size = heart.centre, (heart.size, heart.size)
        else:
            m, cap = self.config.size_multiple, self.config.infer_window
            centre = ((h - 1) / 2 + 0.5, (w - 1) / 2 + 0.5)
            size = (min(int(math.ceil(h / m) * m), cap), min(int(math.ceil(w / m) * m), cap))
        window, box = crop_or_pad(channels, centre, size)
        ctx = StackContext(orientation=orientation, canonical_shape=canonical_shape, resampled_hw=(h, w), box=box)
        return torch.from_numpy(window), ctx

    def invert_probabilities(self, probs: torch.Tensor, ctx: StackContext) -> np.ndarray:
        """``(slices, C, H, W)`` class probabilities -> integer label map on the frame's ``(z, y, x)`` grid."""
        back = undo_crop_or_pad(probs, ctx.box)
        outside = undo_crop_or_pad(torch.zeros(probs.shape[-2:]), ctx.box, fill=1.0)
        back[:, 0] += outside  # background wherever the window did not reach
        scores = resample_inplane(back, ctx.canonical_shape[1:])
        labels = label_map(scores, self.config.myocardium_odds).numpy().astype(np.uint8)
        return ctx.orientation.from_canonical(labels)

"""Slice-wise segmentation of a 3D frame or, frame by frame, a 4D cine, back on the input grid."""

import os
import threading
from typing import Callable, Optional, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from .cam_prior import load_prior
from .imageio import Orientation, frames_of
from .network import load_checkpoint
from .postprocess import clean_label
from .preprocess import CardiacPreprocessor


class SegmentationPredictor:
    """Holds a loaded checkpoint and segments images with it.

    Args:
        checkpoint: path of a published checkpoint.
        device: ``cuda`` or ``cpu``; ``None`` picks CUDA when present.
        batch_slices: slices per forward pass.
    """

    def __init__(self, checkpoint: str, *, device: Optional[str] = None, batch_slices: int = 16):
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.spec, config, self.record = load_checkpoint(checkpoint, self.device)
        self.prior = load_prior(checkpoint, self.device)  # the CAM prior the network was trained with, if any
        self.preprocessor = CardiacPreprocessor(config)
        self.batch_slices = batch_slices

    @classmethod
    def from_model(cls, model: torch.nn.Module, config, *, device: str = "cpu", batch_slices: int = 16) -> "SegmentationPredictor":
        """A predictor around a network already in memory (e.g. a training snapshot) and its preprocessing."""
        self = cls.__new__(cls)
        self.device, self.model, self.spec, self.record, self.prior = device, model.eval(), None, {}, None
        self.preprocessor = CardiacPreprocessor(config)
        self.batch_slices = batch_slices
        return self

    @torch.no_grad()
    def probabilities(self, stack: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities ``(slices, classes, H, W)`` of preprocessed ``(slices, C, H, W)`` inputs."""
        outs = []
        for start in range(0, stack.shape[0], self.batch_slices):
            batch = stack[start : start + self.batch_slices].to(self.device)
            outs.append(torch.softmax(self.model(batch), dim=1).float().cpu())
        return torch.cat(outs)

    def segment_frame(self, frame_zyx: np.ndarray, orientation: Orientation) -> np.ndarray:
        """Label map ``(z, y, x)`` of one frame."""
        stack, ctx = self.preprocessor.inference_input(frame_zyx, orientation, prior=self.prior)
        labels = self.preprocessor.invert_probabilities(self.probabilities(stack), ctx)
        canonical = orientation.to_canonical(labels)
        return orientation.from_canonical(clean_label(canonical))

    def segment(self, image: sitk.Image, progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
        """Label array with the image's own array shape: ``(z, y, x)``, or ``(t, z, y, x)`` for a cine."""
        orientation = Orientation.of(image)
        frames = frames_of(image)
        labels = np.zeros(frames.shape, dtype=np.uint8)
        for t, frame in enumerate(frames):
            labels[t] = self.segment_frame(frame, orientation)
            if progress:
                progress(t + 1, len(frames))
        return labels[0] if image.GetDimension() == 3 else labels


class PredictorCache:
    """Reloads the predictor only when the published checkpoint file changes (atomic replace => new mtime)."""

    def __init__(self, checkpoint: str, *, device: Optional[str] = None):
        self.checkpoint = checkpoint
        self.device = device
        self._lock = threading.Lock()
        self._stamp: Optional[Tuple[float, int]] = None
        self._predictor: Optional[SegmentationPredictor] = None

    def exists(self) -> bool:
        return os.path.isfile(self.checkpoint)

    def get(self, device: Optional[str] = None) -> SegmentationPredictor:
        device = device or self.device
        st = os.stat(self.checkpoint)
        stamp = (st.st_mtime, st.st_ino)
        with self._lock:
            if self._predictor is None or stamp != self._stamp or (device and device != self._predictor.device):
                self._predictor = SegmentationPredictor(self.checkpoint, device=device)
                self._stamp = stamp
            return self._predictor

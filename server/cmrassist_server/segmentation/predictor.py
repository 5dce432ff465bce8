"""Slice-wise segmentation of a 3D frame or, frame by frame, a 4D cine, back on the input grid."""

import logging
from dataclasses import replace
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch

from cmrassist_server.core.checkpoints import ServedModel, file_sha256
from cmrassist_server.core.device import default_device
from cmrassist_server.imaging.imageio import Orientation, frames_of
from cmrassist_server.imaging.postprocess import clean_label
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, HeartWindow, StackContext
from cmrassist_server.segmentation.engine import OpenVinoEngine, cpu_engine
from cmrassist_server.segmentation.heart_window import HEART_WINDOW, locate_heart, probe_slice
from cmrassist_server.segmentation.network import SegmentationModel, load_segmentation
from cmrassist_server.segmentation.views import (
    VIEW_FLIPS,
    ModelView,
    PendingView,
    ViewCache,
    WindowView,
    stack_key,
    window_view,
)

log = logging.getLogger(__name__)


class SegmentationPredictor:
    """Segments images with a loaded segmentation model.

    Args:
        checkpoint: path of a published checkpoint (or ``None`` with ``model``).
        device: ``cuda`` or ``cpu``; ``None`` picks CUDA when present.
        batch_slices: slices per forward pass.
        model: a model already in memory (e.g. a training snapshot) instead of a checkpoint.
        heart_window: segment in a window around the heart found by a pass on the middle slice
            (``segmentation/heart_window.py``), the full window where that pass is unsure.
        engine: ``auto`` runs a checkpoint's network on the CPU through OpenVINO (``segmentation/engine.py``),
            PyTorch otherwise; ``torch`` always runs PyTorch.
    """

    def __init__(
        self,
        checkpoint: Optional[str] = None,
        *,
        device: Optional[str] = None,
        batch_slices: int = 16,
        model: Optional[SegmentationModel] = None,
        engine: str = "auto",
        heart_window: bool = True,
    ):
        self.device = default_device(device)
        digest = file_sha256(checkpoint) if model is None else None  # before loading: the engine must match these
        loaded = model if model is not None else load_segmentation(checkpoint, self.device)
        self.model, self.spec, self.record = loaded.network.eval(), loaded.spec, loaded.record
        self.prior = loaded.prior  # the CAM prior the network was trained with, if any
        self.preprocessor = CardiacPreprocessor(loaded.preprocess)
        self.batch_slices = batch_slices
        self.heart_window = heart_window
        use_engine = engine == "auto" and self.device == "cpu" and model is None
        self.engine = optional_cpu_engine(loaded, checkpoint, digest) if use_engine else None
        #: The flips each model runs under when this predictor segments (none: the model as it is).
        self.pass_flips: Tuple[Tuple[int, ...], ...] = ((),)
        #: The views of the frames segmented last, for their QC (``segmentation/views.py``).
        self.views = ViewCache()

    def as_model(self) -> SegmentationModel:
        """The loaded model itself (network, spec, preprocessing, record, prior)."""
        return SegmentationModel(self.model, self.spec, self.preprocessor.config, self.record, self.prior)

    @torch.no_grad()
    def window_passes(
        self,
        window: torch.Tensor,
        flips: Optional[Sequence[Tuple[int, ...]]] = None,
        runners: Optional[Sequence[Callable[[torch.Tensor], torch.Tensor]]] = None,
    ) -> torch.Tensor:
        """Softmax class probabilities ``(passes, slices, classes, H, W)`` of preprocessed ``(slices, C, H, W)``
        inputs: every model (one here; an ensemble's members), as is or under each of ``flips`` (``pass_flips``
        when not given) and flipped back; passes ordered model by model, each model's flips in order.

        Args:
            runners: what runs each model (:meth:`runners` when not given: the engines where there are some).
        """
        flips = self.pass_flips if flips is None else tuple(flips)
        runners = self.runners() if runners is None else runners
        outs = []
        for start in range(0, window.shape[0], self.batch_slices):
            batch = window[start : start + self.batch_slices].to(self.device)
            passes = []
            for run in runners:
                for dims in flips:
                    p = torch.softmax(run(batch.flip(dims) if dims else batch), dim=1)
                    passes.append((p.flip(dims) if dims else p).float().cpu())
            outs.append(torch.stack(passes))
        return torch.cat(outs, dim=1)

    def runners(self) -> List[Callable[[torch.Tensor], torch.Tensor]]:
        """What runs each model on a batch: its OpenVINO engine on the CPU, else the network."""
        return [self.engine if self.engine is not None else self.model]

    def probabilities(self, window: torch.Tensor) -> torch.Tensor:
        """Mean softmax probabilities ``(slices, classes, H, W)`` over the passes (:meth:`window_passes`)."""
        return self.window_passes(window).mean(0)

    def network_input(self, frame_zyx: np.ndarray, orientation: Orientation) -> Tuple[torch.Tensor, StackContext]:
        """The network's ``(slices, C, H, W)`` window of one frame and the context to invert it: around the heart
        with ``heart_window`` (the full window where its pass is unsure), else the full window."""
        stack, shape = self.preprocessor.resampled_stack(frame_zyx, orientation)
        return self.stack_input(stack, shape, orientation)

    def stack_input(
        self, stack: np.ndarray, shape: Tuple[int, int, int], orientation: Optional[Orientation]
    ) -> Tuple[torch.Tensor, StackContext]:
        """:meth:`network_input` of a resampled ``(slices, H, W)`` stack, its context keyed by the stack."""
        channels = self.preprocessor.input_channels(stack, self.prior)
        heart = self.locate_heart(channels, shape, orientation) if self.heart_window else None
        window, ctx = self.preprocessor.window_input(channels, shape, orientation, heart)
        return window, replace(ctx, key=stack_key(stack))

    def remember(self, ctx: StackContext, passes: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """Keep a frame's ``passes`` (:meth:`window_passes` of its input ``window``) for its QC; returns their mean.

        The view is every model as is and left-right flipped (:data:`VIEW_FLIPS`): made at once from the passes
        when they hold it all (an ensemble with flips), else kept pending with the passes it takes from them.
        """
        self._keep(ctx, passes, window)
        return passes.mean(0)

    def _keep(self, ctx: StackContext, passes: torch.Tensor, window: torch.Tensor) -> Union[WindowView, PendingView]:
        """Put the frame's view (or what it takes of ``passes``, pending) in the cache; returns it."""
        in_view = [i for i, dims in enumerate(self.pass_flips * len(self.runners())) if dims in VIEW_FLIPS]
        taken = passes[in_view]
        view = (
            PendingView(window, taken, ctx.box) if self._missing_flips() else window_view(taken, taken.mean(0), ctx.box)
        )
        self.views.put(ctx.key, view)
        return view

    def _missing_flips(self) -> Tuple[Tuple[int, ...], ...]:
        return tuple(dims for dims in VIEW_FLIPS if dims not in self.pass_flips)

    def stack_view(self, stack: np.ndarray) -> ModelView:
        """The QC's view of a resampled ``(slices, H, W)`` stack: from the passes its segmentation ran (and the
        flips the view adds), else from the same passes run now.

        Args:
            stack: the frame resampled and normalised by this predictor's preprocessing (or one equal to it).
        """
        key = stack_key(stack)
        view = self.views.get(key)
        if view is None:
            window, ctx = self.stack_input(stack, stack.shape, None)
            view = self._keep(ctx, self.window_passes(window), window)
        if isinstance(view, PendingView):
            passes = torch.cat([view.passes, self.window_passes(view.window, self._missing_flips())])
            view = window_view(passes, passes.mean(0), view.box)
            self.views.put(key, view)
        return view.on_stack()

    def segment_frame(self, frame_zyx: np.ndarray, orientation: Orientation) -> np.ndarray:
        """Label map ``(z, y, x)`` of one frame (its view kept for the QC)."""
        window, ctx = self.network_input(frame_zyx, orientation)
        labels = self.preprocessor.invert_probabilities(self.remember(ctx, self.window_passes(window), window), ctx)
        canonical = orientation.to_canonical(labels)
        return orientation.from_canonical(clean_label(canonical))

    def locate_heart(
        self, channels: np.ndarray, shape: Tuple[int, int, int], orientation: Optional[Orientation]
    ) -> Optional[HeartWindow]:
        """The heart window of a frame's ``(slices, C, H, W)`` channels, from one pass on its middle slice."""
        middle = probe_slice(channels.shape[0])
        probe, ctx = self.preprocessor.window_input(channels[middle : middle + 1], shape, orientation)
        multiple = self.preprocessor.config.size_multiple  # the U-Net's total stride: a window must be a multiple
        size = -(-HEART_WINDOW // multiple) * multiple
        return locate_heart(self.probabilities(probe), ctx.box, size=size)

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


def optional_cpu_engine(model: SegmentationModel, checkpoint: str, digest: str) -> Optional[OpenVinoEngine]:
    """The OpenVINO engine of ``model`` (loaded from ``checkpoint`` whose SHA-256 was ``digest``), or ``None``
    (PyTorch serves) when it cannot be had or the file changed while it was loaded."""
    if file_sha256(checkpoint) != digest:
        return None  # replaced during loading: which weights were read is unknown; the next reload exports
    try:
        return cpu_engine(model, checkpoint, digest)
    except Exception as e:  # no export possible (read-only folder, exporter error): PyTorch gives the same labels
        log.warning("segmentation served by PyTorch: no OpenVINO engine for %s (%s)", checkpoint, e)
        return None


def served_segmentation(
    checkpoint: str, device: Optional[str] = None, engine: str = "auto", heart_window: bool = True
) -> ServedModel[SegmentationPredictor]:
    """The served segmentation model of ``checkpoint``, reloaded whenever training or a version change replaces it
    (``engine``, ``heart_window``: see :class:`SegmentationPredictor`)."""
    return ServedModel(
        checkpoint, lambda path: SegmentationPredictor(path, device=device, engine=engine, heart_window=heart_window)
    )

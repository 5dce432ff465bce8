"""Class-activation-map prior: where a slice classifier looks, given to the segmentation network as a channel.

Grad-CAM (MONAI's) of a slice classifier: the served slice-position classifier for its ``in_lv`` class when one
exists, otherwise a classifier of the ACDC disease group (``Info.cfg``) trained for the purpose, for each slice's
predicted group. The map is taken on the classifier's own grid (3 mm, 192 mm around the image centre) at its
second-to-last stage, quantised to a few levels and smoothed with a mode filter (removes speckle without
blurring the blob's edge), then put back on the segmentation grid (zero outside the window).

The classifier's weights are saved inside the segmentation checkpoint, so inference computes exactly the channel
training saw, even after the slice-position model has been retrained.
"""

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from monai.visualize import GradCAM

from cmrassist_server.imaging.preprocess import crop_or_pad, resample_inplane, resampled_size, undo_crop_or_pad
from cmrassist_server.slice_position.network import PositionNet, PositionSpec, predict_positions, stack_inputs

SOURCES = ("slice_position", "disease_group")


@dataclass(frozen=True)
class CamSettings:
    """How the map is made from the classifier.

    Args:
        levels: quantisation levels before the mode filter.
        mode_kernel: edge of the mode filter's window, in classifier pixels (5 x 3 mm = 15 mm).
        stage_from_end: which conv stage's output Grad-CAM explains (2: second to last, 8 x 8 cells of 24 mm for
            the default 64 px window; the last stage's 4 x 4 cells are too coarse to outline a ventricle).
    """

    levels: int = 8
    mode_kernel: int = 5
    stage_from_end: int = 2


def mode_filter(levels: torch.Tensor, n_levels: int, kernel: int) -> torch.Tensor:
    """Most frequent level in each ``kernel`` x ``kernel`` window of an integer ``(N, H, W)`` map (ties: lower)."""
    onehot = F.one_hot(levels.long(), n_levels).permute(0, 3, 1, 2).float()
    counts = F.avg_pool2d(onehot, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return counts.max(1).indices


class CamPrior:
    """Computes the CAM channel of preprocessed stacks.

    Args:
        model: the slice classifier (a :class:`PositionNet`).
        source: ``slice_position`` or ``disease_group``.
        target_class: class explained for every slice (``in_lv``), or ``None`` for each slice's predicted class.
        settings: map settings.
        device: where the classifier runs.
    """

    def __init__(
        self,
        model: PositionNet,
        *,
        source: str,
        target_class: Optional[str],
        settings: Optional[CamSettings] = None,
        device: str = "cpu",
    ):
        if source not in SOURCES:
            raise ValueError(f"CAM source must be one of {SOURCES}, not {source!r}")
        self.model = model.to(device).eval()
        self.source, self.target_class = source, target_class
        self.settings = settings or CamSettings()
        self.device = device
        stage = len(model.spec.channels) - self.settings.stage_from_end
        # Each stage of PositionNet.features is conv, norm, act, conv, norm, act: explain the stage's last act.
        self.layer = f"features.{6 * stage + 5}"
        self._cam = GradCAM(nn_module=self.model, target_layers=self.layer)

    def channel(self, stack: np.ndarray, spacing_mm: float) -> np.ndarray:
        """CAM channel ``(slices, H, W)`` in [0, 1] of a normalised ``(slices, H, W)`` stack at ``spacing_mm``."""
        spec = self.model.spec
        n, h, w = stack.shape
        small_hw = resampled_size((h, w), (spacing_mm, spacing_mm), spec.spacing_mm)
        small = resample_inplane(torch.from_numpy(np.ascontiguousarray(stack, np.float32))[:, None], small_hw)[
            :, 0
        ].numpy()
        x, place = stack_inputs(small, spec)
        maps = self._maps(x.to(self.device), place.to(self.device))
        q = torch.round(maps * (self.settings.levels - 1)).long()
        smooth = mode_filter(q, self.settings.levels, self.settings.mode_kernel).float() / (self.settings.levels - 1)
        _, box = crop_or_pad(
            np.zeros((1,) + tuple(small_hw), np.float32), (small_hw[0] / 2, small_hw[1] / 2), (spec.window, spec.window)
        )  # the window stack_inputs cut
        on_small = undo_crop_or_pad(smooth[:, None], box)
        return resample_inplane(on_small, (h, w))[:, 0].clamp(0, 1).numpy().astype(np.float32)

    def _maps(self, x: torch.Tensor, place: torch.Tensor) -> torch.Tensor:
        """Normalised Grad-CAM ``(N, window, window)`` of the target (or predicted) class of each slice."""
        classes = self.model.spec.classes
        if self.target_class is not None:
            targets = np.full(len(x), classes.index(self.target_class))
        else:
            targets = predict_positions(self.model, x, place, self.device)[0].argmax(1)
        out = torch.zeros((len(x),) + tuple(x.shape[-2:]))
        with torch.enable_grad():  # callers may sit under no_grad (validation, inference)
            for c in np.unique(targets):
                rows = torch.from_numpy(np.flatnonzero(targets == c))
                cam = self._cam(x[rows], class_idx=int(c), place=place[rows])
                out[rows] = torch.nan_to_num(cam.detach().float().cpu()[:, 0])
        return out.clamp(0, 1)

    def state(self) -> Dict[str, Any]:
        """Everything needed to rebuild this prior (saved inside the segmentation checkpoint)."""
        return {
            "source": self.source,
            "target_class": self.target_class,
            "settings": asdict(self.settings),
            "position_spec": asdict(self.model.spec),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
        }

    @classmethod
    def from_state(cls, state: Dict[str, Any], device: str = "cpu") -> "CamPrior":
        s = state["position_spec"]
        spec = PositionSpec(
            channels=tuple(s["channels"]),
            window=int(s["window"]),
            spacing_mm=float(s["spacing_mm"]),
            classes=tuple(s["classes"]),
        )
        model = spec.build()
        model.load_state_dict(state["state_dict"])
        return cls(
            model,
            source=state["source"],
            target_class=state["target_class"],
            settings=CamSettings(**state["settings"]),
            device=device,
        )

    def describe(self) -> Dict[str, Any]:
        """What the model record says about the prior."""
        return {
            "source": self.source,
            "target_class": self.target_class,
            "classes": list(self.model.spec.classes),
            "layer": self.layer,
            **asdict(self.settings),
        }

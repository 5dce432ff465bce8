"""The fold ensemble: the cross-validation's fold models (each trained on 80 ACDC patients, together on all 100)
segment as one, by the mean of their class probabilities, optionally over in-plane flips too (test-time
augmentation). Batch work (cohort analysis, reports, QC scoring) uses it; one-click uses one model for speed.
"""

from typing import List, Optional, Sequence

import torch

from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.segmentation.network import load_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor

#: In-plane flips (tensor dims of ``(slices, C, H, W)``) averaged with ``flips``: none, left-right, up-down.
FLIPS = ((), (3,), (2,))


class EnsemblePredictor(SegmentationPredictor):
    """Segments with the mean probabilities of several models that share one preprocessing.

    Args:
        checkpoints: the members' checkpoints (at least one).
        device: ``cuda`` or ``cpu``; ``None`` picks CUDA when present.
        flips: also average each member over :data:`FLIPS`.
        batch_slices: slices per forward pass.

    Raises:
        CMRAssistError: no member, or members whose preprocessing or CAM prior differ (their inputs would differ).
    """

    def __init__(
        self, checkpoints: Sequence[str], *, device: Optional[str] = None, flips: bool = True, batch_slices: int = 16
    ):
        if not checkpoints:
            raise CMRAssistError("an ensemble needs at least one model")
        device = default_device(device)
        models = [load_segmentation(path, device) for path in checkpoints]
        for path, other in zip(checkpoints[1:], models[1:]):
            if other.preprocess != models[0].preprocess or (other.prior is None) != (models[0].prior is None):
                raise CMRAssistError(
                    f"{path} takes other inputs than {checkpoints[0]}: an ensemble's members must share them"
                )
        super().__init__(device=device, batch_slices=batch_slices, model=models[0])
        self.members: List[torch.nn.Module] = [m.network.eval() for m in models]
        self.flips = FLIPS if flips else ((),)
        self.record = {**self.record, "ensemble": [str(p) for p in checkpoints], "flips": flips}

    @torch.no_grad()
    def probabilities(self, stack: torch.Tensor) -> torch.Tensor:
        """Mean softmax probabilities ``(slices, classes, H, W)`` over members (and flips)."""
        outs = []
        for start in range(0, stack.shape[0], self.batch_slices):
            batch = stack[start : start + self.batch_slices].to(self.device)
            total = None
            for network in self.members:
                for dims in self.flips:
                    x = batch.flip(dims) if dims else batch
                    p = torch.softmax(network(x), dim=1)
                    p = p.flip(dims) if dims else p
                    total = p if total is None else total + p
            outs.append((total / (len(self.members) * len(self.flips))).float().cpu())
        return torch.cat(outs)

"""The fold ensemble: the cross-validation's fold models (each trained on 80 ACDC patients, together on all 100)
segment as one, by the mean of their class probabilities, optionally over in-plane flips too (test-time
augmentation). Batch work (cohort analysis, reports, QC scoring) uses it; one-click uses one model for speed.
"""

from typing import Callable, List, Optional, Sequence

import torch

from cmrassist_server.core.checkpoints import file_sha256
from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.segmentation.network import load_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor, optional_cpu_engine

#: In-plane flips (tensor dims of ``(slices, C, H, W)``) averaged with ``flips``: none, left-right, up-down.
FLIPS = ((), (3,), (2,))


class EnsemblePredictor(SegmentationPredictor):
    """Segments with the mean probabilities of several models that share one preprocessing.

    Args:
        checkpoints: the members' checkpoints (at least one).
        device: ``cuda`` or ``cpu``; ``None`` picks CUDA when present.
        flips: also average each member over :data:`FLIPS`.
        batch_slices: slices per forward pass.
        engine: ``auto`` runs each member on the CPU through OpenVINO (its export beside it, made when missing or
            stale; ``segmentation/engine.py``), PyTorch otherwise; ``torch`` always runs PyTorch.

    Raises:
        CMRAssistError: no member, or members whose preprocessing or CAM prior differ (their inputs would differ).
    """

    def __init__(
        self,
        checkpoints: Sequence[str],
        *,
        device: Optional[str] = None,
        flips: bool = True,
        batch_slices: int = 16,
        engine: str = "auto",
    ):
        if not checkpoints:
            raise CMRAssistError("an ensemble needs at least one model")
        device = default_device(device)
        digests = [file_sha256(path) for path in checkpoints]  # before loading: each engine must match its bytes
        models = [load_segmentation(path, device) for path in checkpoints]
        for path, other in zip(checkpoints[1:], models[1:]):
            if other.preprocess != models[0].preprocess or (other.prior is None) != (models[0].prior is None):
                raise CMRAssistError(
                    f"{path} takes other inputs than {checkpoints[0]}: an ensemble's members must share them"
                )
        super().__init__(device=device, batch_slices=batch_slices, model=models[0])
        self.members: List[torch.nn.Module] = [m.network.eval() for m in models]
        use_engine = engine == "auto" and device == "cpu"
        #: Each member's OpenVINO engine on the CPU (``None`` where PyTorch runs it), as the served model's.
        self.engines = [
            optional_cpu_engine(m, path, digest) if use_engine else None
            for m, path, digest in zip(models, checkpoints, digests)
        ]
        self.pass_flips = FLIPS if flips else ((),)
        self.record = {**self.record, "ensemble": [str(p) for p in checkpoints], "flips": flips}

    def runners(self) -> List[Callable[[torch.Tensor], torch.Tensor]]:
        """Each member's engine on the CPU, else its network."""
        return [engine if engine is not None else network for network, engine in zip(self.members, self.engines)]

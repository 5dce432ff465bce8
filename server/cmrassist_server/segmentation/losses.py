"""Segmentation losses: CE+Dice, cross-entropy alone (calibrated volumes: soft Dice biases them upward where
boundaries are uncertain), and the noise-robust MAE+Dice for training on non-expert labels."""

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from torch import nn

LOSSES = ("ce_dice", "mae_dice", "ce")


class MAEDiceLoss(nn.Module):
    """Dice (foreground classes) plus the mean absolute error between softmax probabilities and one-hot labels.

    MAE is bounded per pixel, so a wrongly labelled pixel cannot dominate the gradient as it does under
    cross-entropy: the reason it tolerates noisy (non-expert) labels.

    Args:
        mae_weight: weight of the MAE term.
    """

    def __init__(self, *, mae_weight: float = 1.0):
        super().__init__()
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
        self.mae_weight = mae_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target[:, 0].long(), logits.shape[1]).movedim(-1, 1).to(probs.dtype)
        # Half the L1 distance between the distributions: 1 - p(true class), in [0, 1] per pixel.
        mae = (probs - onehot).abs().sum(1).mean() / 2
        return self.dice(logits, target) + self.mae_weight * mae


class CELoss(nn.Module):
    """Cross-entropy of ``(N, C, H, W)`` logits against ``(N, 1, H, W)`` integer labels (the loop's label shape)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target[:, 0].long())


def segmentation_loss(name: str) -> nn.Module:
    """The loss called ``name`` (one of :data:`LOSSES`)."""
    if name == "ce_dice":
        return DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    if name == "mae_dice":
        return MAEDiceLoss()
    if name == "ce":
        return CELoss()
    raise ValueError(f"loss must be one of {LOSSES}, not {name!r}")

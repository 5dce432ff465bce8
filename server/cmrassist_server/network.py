"""Segmentation networks and checkpoints: build from a small spec, save atomically, load with their settings."""

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
from monai.networks.nets import AttentionUnet, UNet

from .preprocess import PreprocessConfig

NETWORKS = ("unet", "attention_unet")


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture of the 2D slice-wise segmentation network.

    Args:
        name: ``unet`` (MONAI UNet with residual units) or ``attention_unet`` (MONAI AttentionUnet).
        channels: feature maps per level.
        num_classes: output classes including background.
        norm: normalisation of the U-Net's layers; instance norm behaves the same in training and inference,
            which matters when training sees heart-centred patches and inference whole slices.
        in_channels: input channels: the image, plus one for a CAM prior (``cam_prior.CamPrior``).
    """

    name: str = "unet"
    channels: Tuple[int, ...] = (16, 32, 64, 128, 256)
    num_classes: int = 4
    norm: str = "instance"
    in_channels: int = 1

    def build(self) -> torch.nn.Module:
        if self.name not in NETWORKS:
            raise ValueError(f"unknown network {self.name!r}; choose one of {', '.join(NETWORKS)}")
        strides = (2,) * (len(self.channels) - 1)
        if self.name == "attention_unet":
            return AttentionUnet(spatial_dims=2, in_channels=self.in_channels, out_channels=self.num_classes,
                                 channels=self.channels, strides=strides)
        return UNet(spatial_dims=2, in_channels=self.in_channels, out_channels=self.num_classes, channels=self.channels,
                    strides=strides, num_res_units=1, norm=self.norm)


@dataclass
class ModelRecord:
    """What a published checkpoint was trained on and how well it validated (saved beside it as JSON)."""

    network: Dict[str, Any]
    preprocess: Dict[str, Any]
    trained_at: float = field(default_factory=time.time)
    epochs: int = 0
    train_images: int = 0
    val_images: int = 0
    val: Dict[str, float] = field(default_factory=dict)
    metric: str = "mean"  # the figure of ``val`` that decides which checkpoint is published
    score: Optional[float] = None
    options: Dict[str, Any] = field(default_factory=dict)
    prior: Optional[Dict[str, Any]] = None  # the CAM prior's source and settings, when the network takes one


def _atomic_write(path: str, write) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="partial-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old or the new file, never a partial one
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def publish_checkpoint(path: str, model: torch.nn.Module, spec: NetworkSpec, preprocess: PreprocessConfig,
                       record: ModelRecord, *, prior: Optional[Dict[str, Any]] = None) -> None:
    """Write the checkpoint and its JSON record atomically; the served model changes only when both are whole.

    ``prior``: the state of the CAM prior the network takes as a second channel (kept inside the checkpoint).
    """
    payload = {"state_dict": model.state_dict(), "network": asdict(spec), "preprocess": asdict(preprocess),
               "record": asdict(record), "prior": prior}
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    _atomic_write(record_path(path), lambda tmp: open(tmp, "w").write(json.dumps(asdict(record), indent=2)))


def record_path(checkpoint: str) -> str:
    return os.path.splitext(checkpoint)[0] + ".json"


def load_checkpoint(path: str, device: str = "cpu") -> Tuple[torch.nn.Module, NetworkSpec, PreprocessConfig, Dict]:
    """Load a published checkpoint: the network in eval mode, its spec, its preprocessing and its record."""
    payload = torch.load(path, map_location=device, weights_only=False)
    net = payload["network"]
    spec = NetworkSpec(name=net["name"], channels=tuple(net["channels"]), num_classes=net["num_classes"],
                       norm=net.get("norm", "batch"), in_channels=int(net.get("in_channels", 1)))
    pre = payload["preprocess"]
    config = PreprocessConfig(**{**pre, "percentiles": tuple(pre["percentiles"])})
    model = spec.build().to(device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, spec, config, payload.get("record", {})


def read_record(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(record_path(path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

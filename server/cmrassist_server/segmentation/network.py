"""The segmentation network: built from a small spec, published and loaded through the one checkpoint format."""

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import torch
from monai.networks.nets import AttentionUnet, UNet

from cmrassist_server.core import checkpoints
from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.segmentation.cam_prior import CamPrior

KIND = "segmentation"
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
            return AttentionUnet(
                spatial_dims=2,
                in_channels=self.in_channels,
                out_channels=self.num_classes,
                channels=self.channels,
                strides=strides,
            )
        return UNet(
            spatial_dims=2,
            in_channels=self.in_channels,
            out_channels=self.num_classes,
            channels=self.channels,
            strides=strides,
            num_res_units=1,
            norm=self.norm,
        )

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "NetworkSpec":
        return cls(
            name=values["name"],
            channels=tuple(values["channels"]),
            num_classes=int(values["num_classes"]),
            norm=values.get("norm", "instance"),
            in_channels=int(values.get("in_channels", 1)),
        )


@dataclass
class SegmentationModel:
    """A loaded segmentation checkpoint: the network (eval mode) and what it needs to be used as trained."""

    network: torch.nn.Module
    spec: NetworkSpec
    preprocess: PreprocessConfig
    record: Dict[str, Any]
    prior: Optional[CamPrior] = None  # the CAM prior whose channel the network takes, if any


def publish_segmentation(
    path: str,
    network: torch.nn.Module,
    spec: NetworkSpec,
    preprocess: PreprocessConfig,
    record: ModelRecord,
    *,
    prior: Optional[CamPrior] = None,
) -> None:
    """Publish a segmentation network (with its CAM prior's state inside, when it takes one)."""
    checkpoints.publish(
        path,
        network,
        record,
        spec=asdict(spec),
        preprocess=asdict(preprocess),
        extra={"prior": prior.state()} if prior is not None else None,
    )


def load_segmentation(path: str, device: str = "cpu") -> SegmentationModel:
    """Load a published segmentation checkpoint onto ``device``."""
    ckpt = checkpoints.load(path, device, kind=KIND)
    spec = NetworkSpec.from_dict(ckpt.spec)
    network = spec.build().to(device)
    network.load_state_dict(ckpt.state_dict)
    network.eval()
    prior_state = ckpt.extra.get("prior")
    prior = CamPrior.from_state(prior_state, device) if prior_state else None
    return SegmentationModel(network, spec, PreprocessConfig.from_dict(ckpt.preprocess or {}), ckpt.record, prior)

"""The app's configuration, parsed once from MONAI Label's ``--conf key value`` pairs into a typed object."""

import os
from typing import Dict, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError


class AppConf(BaseModel):
    """Server settings with their defaults in one place.

    Args:
        model_dir: where published checkpoints live (``server/model`` by default).
        network: network of the segmentation model when training from scratch.
        device: ``cuda`` or ``cpu`` for inference; CUDA when present by default.
        train_max_minutes: default training budget of a train request.
        train_max_epochs: default epoch cap of a train request.
        demo_phantoms: phantom subjects written when the server starts with an empty studies folder.
        bootstrap_minutes: budget of the bootstrap training run made before serving when no model exists.
        max_voxels: largest image or label accepted from a client (voxels, read from the header first).
        max_upload_mb: largest request body (413 beyond; read by ``api/asgi.py``).
        cors_origins: comma-separated web origins allowed to call the API from a browser (none by default).
        oidc_issuer, oidc_audience, oidc_jwks_url: an OIDC provider whose bearer tokens sign users in (all three,
            or none); ``oidc_name_claim``, ``oidc_roles_claim``, ``oidc_expertise_claim``, ``oidc_role_map``: how to
            read its tokens (``accounts/oidc.py``).
        max_open_batches: ranking batches one annotator may hold open at once.
        shipped_dir: the shipped models installed into an empty model folder (``models/`` of the repository by
            default, or the ``CMRASSIST_SHIPPED_DIR`` environment variable; ``none`` for none).
        qc_threshold: predicted slice Dice under which QC flags a slice (LV, MYO and RV alike; a request may
            set its own per class).
        engine: ``auto`` segments on the CPU with the network's OpenVINO export (``segmentation/engine.py``),
            ``torch`` with PyTorch (the same labels, slower; CUDA always uses PyTorch).
        heart_window: one-click segments in a 144-pixel window around the heart found on the middle slice
            (``segmentation/heart_window.py``), the full window where that is unsure; ``false`` always uses the
            full window.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="ignore")

    model_dir: str
    network: Literal["unet", "attention_unet"] = "unet"
    device: Optional[Literal["cpu", "cuda"]] = None
    train_max_minutes: float = Field(10.0, gt=0, le=7 * 24 * 60)
    train_max_epochs: int = Field(50, ge=1, le=100000)
    demo_phantoms: int = Field(12, ge=0, le=1000)
    bootstrap_minutes: float = Field(3.0, ge=0, le=24 * 60)
    qc_threshold: float = Field(0.7, ge=0, le=1)
    max_voxels: int = Field(256 * 1024 * 1024, ge=1)
    max_upload_mb: float = Field(1024.0, gt=0)
    cors_origins: str = ""
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_name_claim: str = "preferred_username"
    oidc_roles_claim: str = "roles"
    oidc_expertise_claim: str = "expertise"
    oidc_role_map: str = ""
    max_open_batches: int = Field(3, ge=1, le=1000)
    shipped_dir: str = ""
    engine: Literal["auto", "torch"] = "auto"
    heart_window: bool = True

    @classmethod
    def parse(cls, conf: Dict[str, str], app_dir: str) -> "AppConf":
        """Parse MONAI Label's string conf; unknown keys are left to MONAI Label itself.

        Raises:
            CMRAssistError: a setting of the wrong type, out of its range or not among its choices (the server
                does not start).
        """
        model_dir = conf.get("model_dir") or os.environ.get("CMRASSIST_MODEL_DIR") or os.path.join(app_dir, "model")
        values = {k: v for k, v in conf.items() if k in cls.model_fields and v != ""}
        try:
            conf_obj = cls.model_validate({**values, "model_dir": model_dir})
        except ValidationError as e:
            wrong = "; ".join(
                f"app setting {'.'.join(map(str, x['loc']))}={x.get('input')!r}: {x['msg']}" for x in e.errors()
            )
            raise CMRAssistError(wrong) from None
        default_device(conf_obj.device)  # an unusable device is refused at start, not at the first request
        return conf_obj

    @property
    def segmentation_checkpoint(self) -> str:
        return os.path.join(self.model_dir, "segmentation.pt")

    @property
    def qc_checkpoint(self) -> str:
        return os.path.join(self.model_dir, "qc.pt")

    @property
    def position_checkpoint(self) -> str:
        return os.path.join(self.model_dir, "slice_position.pt")

    @property
    def cam_group_checkpoint(self) -> str:
        """The disease-group slice classifier a CAM prior falls back on when no slice-position model exists."""
        return os.path.join(self.model_dir, "cam_disease_group.pt")

"""Which classifier a new segmentation training run takes its CAM prior from, trained here when needed."""

import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.segmentation.cam_prior import CamPrior
from cmrassist_server.slice_position.network import (
    POSITIONS,
    PositionNet,
    PositionSpec,
    frame_stack,
    load_position,
    stack_inputs,
)
from cmrassist_server.slice_position.training import LabelledStack, PositionTrainOptions, train_position


def group_stacks(items: List[Dict], spec: PositionSpec) -> List[LabelledStack]:
    """Slice-classifier inputs of each labelled frame, every slice labelled with its subject's disease group."""
    stacks = []
    for it in items:
        group = it.get("group") or ""
        if group not in spec.classes:
            continue
        x, place = stack_inputs(frame_stack(sitk.ReadImage(it["image"]), spec), spec)
        n = len(x)
        stacks.append(
            LabelledStack(
                image_id=os.path.basename(it["image"]),
                subject=it.get("subject") or it["image"],
                x=x,
                place=place,
                labels=np.full(n, spec.classes.index(group), np.int64),
                continuous=np.full(n, np.nan),
            )
        )
    return stacks


def item_groups(items: List[Dict]) -> Tuple[str, ...]:
    """The disease groups (ACDC ``Info.cfg`` Group) of the labelled items, sorted."""
    return tuple(sorted({it.get("group") for it in items if it.get("group")}))


def _position_model(checkpoint: str, device: str = "cpu") -> Optional[PositionNet]:
    """The served slice-position classifier, or ``None`` when there is none."""
    if not os.path.isfile(checkpoint):
        return None
    model, _ = load_position(checkpoint, device)
    return model if tuple(model.spec.classes) == POSITIONS else None


def _checked_groups(items: List[Dict]) -> Tuple[str, ...]:
    """The items' disease groups; raises ``CMRAssistError`` (409) with fewer than two groups or three subjects."""
    groups = item_groups(items)
    subjects = {it.get("subject") or it["image"] for it in items if it.get("group")}
    if len(groups) < 2 or len(subjects) < 3:
        raise CMRAssistError(
            "the CAM prior needs a slice-position model (rank slices, then train slice_position) or "
            f"labelled subjects of at least two disease groups (found groups {list(groups)})",
            409,
        )
    return groups


def prior_source(items: List[Dict], *, position_checkpoint: str) -> str:
    """``slice_position`` or ``disease_group``: where a CAM prior for ``items`` would come from.

    Raises:
        CMRAssistError (409): neither a slice-position model nor subjects of two or more disease groups.
    """
    if _position_model(position_checkpoint) is not None:
        return "slice_position"
    _checked_groups(items)
    return "disease_group"


def training_prior(
    items: List[Dict],
    *,
    position_checkpoint: str,
    group_checkpoint: str,
    device: Optional[str],
    seed: int,
    group_epochs: int = 20,
    group_minutes: float = 3.0,
    retrain_group: bool = False,
    log: Callable[..., None] = lambda *a, **f: None,
) -> CamPrior:
    """The prior a new segmentation training run uses.

    The served slice-position classifier when there is one; otherwise the disease-group classifier at
    ``group_checkpoint``, trained now on ``items`` (their ``group``) when absent, when its groups differ from the
    items' or when ``retrain_group``.

    Args:
        items: the labelled frames (``image``, ``subject``, ``group``).
        position_checkpoint: the served slice-position classifier (may not exist).
        group_checkpoint: where the disease-group classifier is kept.
        device: ``cpu`` or ``cuda``; CUDA when present by default.
        seed: random seed of the group classifier's training.
        group_epochs: its epochs at most.
        group_minutes: its time budget.
        retrain_group: train it again even when a matching one exists.
        log: progress callback.

    Raises:
        CMRAssistError (409): neither a slice-position model nor labelled subjects of two or more disease groups.
    """
    device = default_device(device)
    model = _position_model(position_checkpoint, device)  # loaded once, used as it is
    if model is not None:
        log("loading", stage="cam_prior", source="slice_position")
        return CamPrior(model, source="slice_position", target_class="in_lv", device=device)
    groups = _checked_groups(items)
    current = None
    if os.path.isfile(group_checkpoint) and not retrain_group:
        current, _ = load_position(group_checkpoint, device)
        if tuple(current.spec.classes) != groups:
            current = None
    if current is None:
        log("loading", stage="cam_prior", source="disease_group", training=True, groups=list(groups))
        current = _train_group_classifier(items, groups, group_checkpoint, device, seed, group_epochs, group_minutes)
    return CamPrior(current, source="disease_group", target_class=None, device=device)


def _train_group_classifier(
    items: List[Dict], groups: Tuple[str, ...], checkpoint: str, device: str, seed: int, epochs: int, minutes: float
) -> PositionNet:
    """The slice classifier trained on the items' disease groups (every slice labelled with its subject's)."""
    spec = PositionSpec(classes=groups)
    options = PositionTrainOptions(
        max_epochs=epochs, max_minutes=minutes, device=device, position_weight=0.0, from_scratch=True, seed=seed
    )
    train_position(
        group_stacks(items, spec),
        checkpoint,
        options,
        spec=spec,
        record_extra={"target": "disease_group"},
        log=lambda *a, **f: None,
    )
    return load_position(checkpoint, device)[0]

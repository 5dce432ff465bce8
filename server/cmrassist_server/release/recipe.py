"""``cmrassist train-release``: the shipped segmentation, slice-position and QC models, made from ACDC by one
command, deterministic given its seed (epochs fix the work; ``--minutes`` only caps it), each scored on the 20
held-out patients it never saw and written with a model card and a checksum.
"""

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.training import Log, TrainResult
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.io.acdc import acdc_items, find_patients
from cmrassist_server.qc.training import QCTrainOptions, train_qc
from cmrassist_server.release.cards import write_card
from cmrassist_server.segmentation.heldout import HELD_OUT, training_patients
from cmrassist_server.segmentation.network import NetworkSpec
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation
from cmrassist_server.slice_position.data import label_positions, labelled_stacks
from cmrassist_server.slice_position.training import PositionTrainOptions, train_position

MODELS = ("segmentation", "slice_position", "qc")


@dataclass(frozen=True)
class ReleasePlan:
    """What ``train-release`` does.

    Args:
        acdc: the ACDC training folder (read in place, never copied).
        out: where the models, cards and checksums go (``models/``).
        models: which models to make, in this order (QC last: it learns from the segmentation model).
        epochs: epochs per model (the fixed amount of work that makes a run repeatable).
        minutes: a wall-clock cap per model (``None``: none); a run stopped by it says so on its card.
        device: ``cpu`` or ``cuda`` (CUDA when present).
        seed: the one seed of every split, sampling and augmentation.
        hold_out: keep :data:`HELD_OUT` out of training (the models reported on); ``False`` trains on all 100.
        quick: a smoke run of the whole recipe (the tests): every 8th training patient, every 5th held-out one,
            fewer QC variants; its cards say so. Never shipped.
        state: folder of each model's training state (outside the repository); a stopped run continues from it
            with ``resume`` (``None``: nothing kept, nothing to continue).
        resume: continue the states found in ``state``; without it, a state there is refused, never overwritten.
    """

    acdc: str
    out: str
    models: Tuple[str, ...] = MODELS
    epochs: Dict[str, int] = field(default_factory=lambda: {"segmentation": 400, "slice_position": 40, "qc": 30})
    minutes: Dict[str, Optional[float]] = field(default_factory=dict)
    device: Optional[str] = None
    seed: int = 0
    hold_out: bool = True
    quick: bool = False
    state: Optional[str] = None
    resume: bool = False

    def state_path(self, model: str) -> Optional[str]:
        return os.path.join(self.state, f"{model}-state.pt") if self.state else None

    def patients(self) -> List[int]:
        patients = training_patients() if self.hold_out else list(range(1, 101))
        return patients[::8] if self.quick else patients

    def held_out(self) -> List[int]:
        """The patients the cards report on (none when training on all 100)."""
        return (list(HELD_OUT)[::5] if self.quick else list(HELD_OUT)) if self.hold_out else []

    def budget(self, model: str) -> float:
        return self.minutes.get(model) or 7 * 24 * 60.0


def check_plan(plan: ReleasePlan) -> None:
    """Refuse a plan that cannot run, before any work (CMRAssistError, status 400)."""
    unknown = [m for m in plan.models if m not in MODELS]
    if unknown:
        raise CMRAssistError(f"unknown model(s) {unknown}; choose among {list(MODELS)}")
    found = find_patients(plan.acdc) if os.path.isdir(plan.acdc) else []
    if len(found) < 100:
        raise CMRAssistError(
            f"{plan.acdc} holds {len(found)} ACDC patients; the release recipe needs all 100 "
            "(patient001 ... patient100 with Info.cfg, frames and _gt labels)"
        )
    needs_segmentation = "qc" in plan.models and "segmentation" not in plan.models
    if needs_segmentation and not os.path.isfile(os.path.join(plan.out, "segmentation.pt")):
        raise CMRAssistError("the QC model learns from the segmentation model: make segmentation first")
    default_device(plan.device)
    started = [m for m in plan.models if plan.state and os.path.isfile(plan.state_path(m))]
    if started and not plan.resume:
        raise CMRAssistError(f"{plan.state} holds the state of a stopped {started} run: --resume continues it", 409)


def train_release(plan: ReleasePlan, *, log: Log, progress: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Make every model of ``plan`` into ``plan.out`` with its card; returns each model's training summary."""
    check_plan(plan)
    os.makedirs(plan.out, exist_ok=True)
    items = acdc_items(plan.acdc, plan.patients())
    done = {}
    for model in plan.models:
        progress(f"[release] {model}: training on {len({it['subject'] for it in items})} patients")
        start = time.time()
        result = STAGES[model](plan, items, log)
        # This process's time, or the training loop's over every resumption where a stopped run was continued.
        minutes = max(time.time() - start, result.seconds) / 60
        machine = {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": default_device(plan.device),
        }
        write_card(plan, model, result, minutes=minutes, machine=machine)
        done[model] = {**result.summary(), "minutes": round(minutes, 1)}
        progress(f"[release] {model}: {done[model]}")
    return done


def _options(cls, plan: ReleasePlan, model: str, val_split: float):
    """A release training's options: from scratch, the plan's epochs, budget, device and seed for ``model``."""
    return cls(
        max_epochs=plan.epochs[model],
        max_minutes=plan.budget(model),
        val_split=val_split,
        device=plan.device,
        seed=plan.seed,
        from_scratch=True,
    )


def _segmentation(plan: ReleasePlan, items: List[Dict], log: Log) -> TrainResult:
    options = _options(SegmentationTrainOptions, plan, "segmentation", val_split=0.1)
    # 2.5D: the slice and its two neighbours (through-plane context helps at the base, the apex and the RV at ES).
    return train_segmentation(
        items,
        os.path.join(plan.out, "segmentation.pt"),
        options,
        log=log,
        preprocess=PreprocessConfig(neighbour_slices=1),
        spec=NetworkSpec(),
        state_path=plan.state_path("segmentation"),
    )


def _slice_position(plan: ReleasePlan, items: List[Dict], log: Log) -> TrainResult:
    """From positions derived from the expert labels (``slice_position/data.label_positions``)."""
    positions, paths, subjects = label_positions(items)
    stacks = labelled_stacks(positions, paths.get, subjects.get)
    options = _options(PositionTrainOptions, plan, "slice_position", val_split=0.2)
    return train_position(
        stacks,
        os.path.join(plan.out, "slice_position.pt"),
        options,
        log=log,
        record_extra={"labels": "expert labels (ACDC), published position definitions"},
        state_path=plan.state_path("slice_position"),
    )


def _qc(plan: ReleasePlan, items: List[Dict], log: Log) -> TrainResult:
    options = QCTrainOptions(
        max_epochs=plan.epochs["qc"],
        max_minutes=plan.budget("qc"),
        val_split=0.2,
        device=plan.device,
        seed=plan.seed,
        from_scratch=True,
        snapshots=1 if plan.quick else 3,
        corruptions_per_case=1 if plan.quick else 8,
        snapshot_minutes=plan.minutes.get("qc_snapshot") or 30.0,
    )
    return train_qc(
        items,
        os.path.join(plan.out, "qc.pt"),
        options,
        log=log,
        segmentation_checkpoint=os.path.join(plan.out, "segmentation.pt"),
        state_path=plan.state_path("qc"),
    )


STAGES: Dict[str, Callable[[ReleasePlan, List[Dict], Log], TrainResult]] = {
    "segmentation": _segmentation,
    "slice_position": _slice_position,
    "qc": _qc,
}


def plan_dict(plan: ReleasePlan) -> Dict:
    return {**asdict(plan), "held_out": plan.held_out()}


def parse_counts(text: Optional[str], what: str, cast: Callable = int) -> Dict[str, float]:
    """``"segmentation=400,qc=30"`` -> ``{"segmentation": 400, "qc": 30}``; a bare number applies to every model
    (CMRAssistError on bad text)."""
    out = {}
    if text and "=" not in text:
        try:
            return dict.fromkeys(MODELS, cast(text))
        except ValueError:
            raise CMRAssistError(f"--{what} takes a number or model=number pairs, not {text!r}") from None
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = cast(value)
        except ValueError:
            raise CMRAssistError(f"--{what} takes model=number pairs, not {part!r}") from None
    return out


def release_plan(
    acdc: str,
    out: str,
    *,
    models: Sequence[str],
    epochs: str,
    minutes: str,
    device: Optional[str],
    seed: int,
    all_patients: bool,
    quick: bool = False,
    state: Optional[str] = None,
    resume: bool = False,
) -> ReleasePlan:
    """The plan of a ``train-release`` command line."""
    default = ReleasePlan(acdc, out)
    return ReleasePlan(
        acdc=acdc,
        out=out,
        models=tuple(models),
        epochs={**default.epochs, **parse_counts(epochs, "epochs")},
        minutes=parse_counts(minutes, "minutes", float),
        device=device,
        seed=seed,
        hold_out=not all_patients,
        quick=quick,
        state=state,
        resume=resume,
    )

"""Cross-validation of the segmentation recipe: 5 patient-level folds stratified by ACDC disease group, each fold
model trained on the other folds' patients and scored on its own, resumable fold by fold and epoch by epoch.

Everything a run makes lives under its state folder, outside the repository (a run of many hours spans sessions):
``<state>/<variant>/fold<k>/`` holds the fold's model (``segmentation.pt``), its training state
(``train-state.pt``, see ``core.resume``) and, once scored, ``scores.json`` (per volume and per patient). The
fold models together are the shipped ensemble (``release/ensemble.py``): each saw 80 patients, all saw 100.
"""

import json
import math
import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional

from cmrassist_server.core.checkpoints import atomic_write_json
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.splits import stratified_folds
from cmrassist_server.core.training import Log
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.io.acdc import acdc_items, find_patients
from cmrassist_server.segmentation.heldout import evaluate_acdc
from cmrassist_server.segmentation.network import NetworkSpec
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation


@dataclass(frozen=True)
class Variant:
    """One recipe choice judged by cross-validation.

    Args:
        preprocess: preprocessing (2D or 2.5D input, patch size, spacing).
        spec: network architecture.
        loss: training loss (``ce_dice``, ``mae_dice`` or ``ce``).
    """

    preprocess: PreprocessConfig
    spec: NetworkSpec = NetworkSpec()
    loss: str = "ce_dice"


#: The recipe variants a CV can run (``--variant``); ``2.5d`` is the shipped recipe.
VARIANTS: Dict[str, Variant] = {
    "2.5d": Variant(PreprocessConfig(neighbour_slices=1)),
    "2d": Variant(PreprocessConfig(neighbour_slices=0)),
    "2.5d-mae": Variant(PreprocessConfig(neighbour_slices=1), loss="mae_dice"),
    "2.5d-ce": Variant(PreprocessConfig(neighbour_slices=1), loss="ce"),  # does soft Dice bias the myocardium?
}


@dataclass(frozen=True)
class FoldsPlan:
    """What a cross-validation run does.

    Args:
        acdc: the ACDC training folder (read in place).
        state: the run's folder, outside the repository.
        variant: a key of :data:`VARIANTS`.
        folds: number of folds.
        epochs: epochs per fold model (fixed work: the schedule depends on it, never on the clock).
        seed: seed of the fold split, the training and the augmentation.
        device: ``cpu`` or ``cuda``.
        only: train and score only these folds (``None``: all).
        quick: every 5th training patient (smoke runs; never reported).
    """

    acdc: str
    state: str
    variant: str = "2.5d"
    folds: int = 5
    epochs: int = 50
    seed: int = 0
    device: Optional[str] = None
    only: Optional[List[int]] = None
    quick: bool = False

    def fold_dir(self, fold: int) -> str:
        return os.path.join(self.state, self.variant, f"fold{fold}")


def acdc_folds(acdc: str, folds: int, seed: int) -> List[List[int]]:
    """Patient numbers of each fold, stratified by disease group (``Info.cfg`` ``Group``)."""
    groups = {p.number: p.info.get("Group", "") for p in find_patients(acdc)}
    return [[int(n) for n in fold] for fold in stratified_folds(groups, folds, seed)]


def check_folds_plan(plan: FoldsPlan, resume: bool) -> None:
    """Refuse a plan that cannot run, or would silently continue or overwrite another run (CMRAssistError)."""
    if plan.variant not in VARIANTS:
        raise CMRAssistError(f"unknown variant {plan.variant!r}; choose among {sorted(VARIANTS)}")
    if len(find_patients(plan.acdc)) < plan.folds:
        raise CMRAssistError(f"{plan.acdc} holds fewer ACDC patients than the {plan.folds} folds asked for")
    for k in plan.only or []:
        if not 0 <= k < plan.folds:
            raise CMRAssistError(f"fold {k} does not exist: folds are 0 to {plan.folds - 1}")
    started = os.path.isdir(os.path.join(plan.state, plan.variant))
    if started and not resume:
        raise CMRAssistError(f"{plan.state} already holds a {plan.variant} run: --resume continues it", 409)
    settings = {"folds": plan.folds, "epochs": plan.epochs, "seed": plan.seed, "quick": plan.quick}
    saved = os.path.join(plan.state, plan.variant, "plan.json")
    if os.path.isfile(saved) and read_json(saved) != settings:
        raise CMRAssistError(f"{saved} was started as {read_json(saved)}; a resumed run must keep them", 409)
    atomic_write_json(saved, settings)


def run_folds(plan: FoldsPlan, *, resume: bool, log: Log, progress: Callable[[str], None] = print) -> List[Dict]:
    """Train and score every fold of ``plan`` not done yet; returns each fold's scores (see :func:`fold_scores`)."""
    check_folds_plan(plan, resume)
    folds = acdc_folds(plan.acdc, plan.folds, plan.seed)
    done = []
    for k, test_patients in enumerate(folds):
        if plan.only is not None and k not in plan.only:
            continue
        scores_path = os.path.join(plan.fold_dir(k), "scores.json")
        if not os.path.isfile(scores_path):
            train_patients = [n for other, fold in enumerate(folds) if other != k for n in fold]
            progress(f"[cv] {plan.variant} fold {k}: training on {len(train_patients)} patients")
            checkpoint = _train_fold(plan, k, train_patients[:: 5 if plan.quick else 1], log)
            progress(f"[cv] {plan.variant} fold {k}: scoring on {len(test_patients)} patients")
            predictor = SegmentationPredictor(checkpoint, device=plan.device)
            result = evaluate_acdc(predictor, plan.acdc, test_patients)
            atomic_write_json(scores_path, json_safe({"fold": k, "patients": test_patients, **result}))
        done.append(read_json(scores_path))
    return done


def _train_fold(plan: FoldsPlan, fold: int, patients: List[int], log: Log) -> str:
    variant = VARIANTS[plan.variant]
    folder = plan.fold_dir(fold)
    os.makedirs(folder, exist_ok=True)
    options = SegmentationTrainOptions(
        max_epochs=plan.epochs,
        max_minutes=7 * 24 * 60.0,  # the clock never shapes a CV run: its schedule is by epochs alone
        val_split=0.1,
        device=plan.device,
        seed=plan.seed + fold,
        from_scratch=True,
        loss=variant.loss,
    )
    checkpoint = os.path.join(folder, "segmentation.pt")
    spec = replace(variant.spec, in_channels=variant.preprocess.input_count())
    items = acdc_items(plan.acdc, patients)
    state_path = os.path.join(folder, "train-state.pt")
    train_segmentation(
        items, checkpoint, options, log=log, state_path=state_path, preprocess=variant.preprocess, spec=spec
    )
    return checkpoint


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (an HD95 of an empty class) as ``None``."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

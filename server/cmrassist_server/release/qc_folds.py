"""The QC trained on out-of-fold predictions and cross-validated with the segmentation folds (issue 25, item 4).

A model's predictions on its own training patients are better than it will ever be on a new patient, so a QC
trained on them learns to expect too little error. Here each ACDC patient is seen only through the fold models
that never saw it (the segmentation CV's ``<state>/<variant>/fold<k>/segmentation.pt``, one per variant listed):
their mean probabilities and disagreement (with flips, as batch work runs them) are the QC's view
(``segmentation/views.py``), their labels join the QC set beside corruptions and weak snapshots. QC fold ``k`` trains on the other folds' patients and is scored on fold
``k``'s: (a) the fold models' own labels, (b) the published protocol (varied labels, Dice bins weighted evenly).
``fold=None`` trains the QC that ships, on every patient. Everything lives under ``<state>/qc-<variants>/``.
"""

import os
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from cmrassist_server.core.checkpoints import atomic_write_json
from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.splits import split_subjects
from cmrassist_server.core.training import Log
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig, label_map
from cmrassist_server.io.acdc import acdc_items
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.dataset import QCTrainingSet, build_training_set, snapshot_plans, train_snapshots
from cmrassist_server.qc.heldout import evaluate_qc_acdc, protocol_mae
from cmrassist_server.qc.network import QCSpec, load_qc
from cmrassist_server.qc.training import QCSets, QCTrainOptions, train_qc
from cmrassist_server.release.calibration import calibration_odds
from cmrassist_server.release.folds import acdc_folds, json_safe, read_json
from cmrassist_server.segmentation.data import prepare_cases
from cmrassist_server.segmentation.ensemble import EnsemblePredictor


@dataclass(frozen=True)
class QCFoldsPlan:
    """What an out-of-fold QC run does.

    Args:
        acdc: the ACDC training folder (read in place).
        state: the segmentation CV's state folder (its fold models are read; the QC run is kept beside them).
        variants: segmentation CV variants whose fold models form each patient's out-of-fold view.
        folds, seed: as the segmentation CV was run (the same patients in the same folds).
        epochs: QC epochs per fold.
        corruptions_per_case, snapshots, snapshot_minutes: the varied labels (``qc/training.QCTrainOptions``).
        device: ``cpu`` or ``cuda``.
        quick: every 5th patient (smoke runs; never reported).
    """

    acdc: str
    state: str
    variants: Tuple[str, ...] = ("2.5d",)
    folds: int = 5
    seed: int = 0
    epochs: int = 30
    corruptions_per_case: int = 8
    snapshots: int = 3
    snapshot_minutes: float = 1.5
    device: Optional[str] = None
    quick: bool = False

    def folder(self, fold: Optional[int]) -> str:
        """``<state>/qc-<variants>/fold<k>`` (``all`` for the QC that ships)."""
        return os.path.join(self.state, "qc-" + "+".join(self.variants), "all" if fold is None else f"fold{fold}")

    @cached_property
    def myocardium_odds(self) -> float:
        """The segmentation CV's myocardium calibration (``release/calibration.py``; 1 with several variants), read
        and checked against the fold models once a run: every fold's labels then use the same odds."""
        return calibration_odds(self.state, self.variants[0]) if len(self.variants) == 1 else 1.0

    def fold_ensemble(self, fold: int, device: str) -> EnsemblePredictor:
        """The fold's segmentation models with flips, labelling with the calibration as the shipped ones do."""
        ensemble = EnsemblePredictor(self.member_paths(fold), device=device)
        ensemble.preprocessor.config = replace(ensemble.preprocessor.config, myocardium_odds=self.myocardium_odds)
        return ensemble

    def member_paths(self, fold: int) -> List[str]:
        """The fold's segmentation models, one per variant.

        Raises:
            CMRAssistError (409): a fold model is missing (its CV has not finished that fold).
        """
        paths = [os.path.join(self.state, variant, f"fold{fold}", "segmentation.pt") for variant in self.variants]
        for path in paths:
            if not os.path.isfile(os.path.join(os.path.dirname(path), "scores.json")):
                raise CMRAssistError(f"{path} is not a finished fold model: finish the segmentation CV first", 409)
        return paths


def _cases_by_fold(plan: QCFoldsPlan, folds: List[List[int]]):
    """Prepared ED/ES frames of every patient, each with its fold number."""
    pre = CardiacPreprocessor(PreprocessConfig())
    cases, fold_of = [], {}
    for k, patients in enumerate(folds):
        for item in acdc_items(plan.acdc, patients[:: 5 if plan.quick else 1]):
            fold_of[item["subject"]] = k
            key = f"{item['subject']}_{item['phase']}"
            cases += prepare_cases(key, item["subject"], item["image"], item["label"], pre)
    return cases, fold_of, pre


def _varied_set(cases, views, snapshots, plan: QCFoldsPlan, device: str, seed: int) -> QCTrainingSet:
    """References, corruptions, snapshot labels and each patient's out-of-fold labels, with the out-of-fold view."""
    dataset = build_training_set(
        cases,
        corruptions_per_case=plan.corruptions_per_case,
        models=snapshots,
        device=device,
        seed=seed,
        views=views,
        disagreement=True,
    )
    odds = plan.myocardium_odds
    for i in range(len(cases)):
        # The out-of-fold models' own labels: the mean of the passes the view already ran, as batch work labels.
        labels = label_map(torch.from_numpy(dataset.probs[i]), odds).numpy().astype(np.uint8)
        dataset.add(i, labels, "out-of-fold")
    return dataset


def oof_sets(plan: QCFoldsPlan, fold: Optional[int], log: Log) -> Tuple[QCSets, List, Dict[str, int]]:
    """The QC training and validation sets of QC fold ``fold`` (every patient outside it; ``None``: all), the
    cases of the fold itself and every patient's fold."""
    device = default_device(plan.device)
    folds = acdc_folds(plan.acdc, plan.folds, plan.seed)
    # Each patient's view: its out-of-fold models as batch work runs them (with flips), the QC checks as it will.
    members = {k: plan.fold_ensemble(k, device) for k in range(plan.folds)}
    cases, fold_of, pre = _cases_by_fold(plan, folds)
    views = lambda case: members[fold_of[case.subject]]  # noqa: E731 - the patient's out-of-fold models
    training = [c for c in cases if fold_of[c.subject] != fold]
    subjects = sorted({c.subject for c in training})
    groups = {it["subject"]: it["group"] for it in acdc_items(plan.acdc, [n for f in folds for n in f])}
    train_subjects, _ = split_subjects(subjects, groups, 0.1, plan.seed)
    options = QCTrainOptions(snapshots=plan.snapshots, snapshot_minutes=plan.snapshot_minutes, seed=plan.seed)
    train_items = acdc_items(plan.acdc, _numbers(train_subjects))
    snapshots = train_snapshots(
        train_items,
        snapshot_plans(plan.snapshots, np.random.default_rng(plan.seed)),
        device=device,
        seed=plan.seed,
        minutes_each=options.snapshot_minutes,
        log=log,
    )
    log("loading", stage="views", cases=len(cases))
    parts = [
        [c for c in training if c.subject in train_subjects],
        [c for c in training if c.subject not in train_subjects],
    ]
    train, val = (_varied_set(p, views, snapshots, plan, device, plan.seed + i) for i, p in enumerate(parts))
    held = [c for c in cases if fold_of[c.subject] == fold]
    return QCSets(train, val, pre.config, snapshots), held, fold_of


def _numbers(subjects) -> List[int]:
    return sorted(int(s.replace("patient", "")) for s in subjects)


#: The options a QC fold was started with, beside its state.
OPTIONS = "options.json"


def _options(plan: QCFoldsPlan) -> Dict:
    """What a QC fold's labels and schedule depend on (not where it runs)."""
    keys = ("variants", "folds", "seed", "epochs", "corruptions_per_case", "snapshots", "snapshot_minutes", "quick")
    return json_safe({k: getattr(plan, k) for k in keys})


def _same_options(plan: QCFoldsPlan, folder: str) -> None:
    """A QC fold is continued or read back only with the options it was started with.

    Raises:
        CMRAssistError (409): it was started with other options.
    """
    path = os.path.join(folder, OPTIONS)
    if not os.path.isfile(path):
        return  # not started (or started before options were recorded)
    started, asked = read_json(path), _options(plan)
    if started != asked:
        differ = ", ".join(f"{k} {started.get(k)} (asked {asked.get(k)})" for k in asked if started.get(k) != asked[k])
        raise CMRAssistError(
            f"{folder} holds a QC run started with other options: {differ}; run it with those, or use another --state",
            409,
        )


def run_qc_fold(plan: QCFoldsPlan, fold: Optional[int], *, resume: bool, log: Log) -> Dict:
    """Train QC fold ``fold`` on out-of-fold predictions (continuing its saved state with ``resume``) and score it
    on the fold's patients (``None``: the QC that ships, trained on every patient, not scored); returns the scores.

    Raises:
        CMRAssistError (409): the fold was started and ``resume`` is off, or a fold model is missing.
    """
    folder = plan.folder(fold)
    scores_path = os.path.join(folder, "scores.json")
    _same_options(plan, folder)
    if os.path.isfile(scores_path):
        return read_json(scores_path)
    if os.path.isdir(folder) and not resume:
        raise CMRAssistError(f"{folder} holds a started QC run: --resume continues it", 409)
    os.makedirs(folder, exist_ok=True)
    atomic_write_json(os.path.join(folder, OPTIONS), _options(plan))
    sets, held, _ = oof_sets(plan, fold, log)
    options = QCTrainOptions(
        max_epochs=plan.epochs,
        max_minutes=7 * 24 * 60.0,
        val_split=0.1,
        device=plan.device,
        seed=plan.seed,
        from_scratch=True,
        disagreement=True,
        corruptions_per_case=plan.corruptions_per_case,
        snapshots=plan.snapshots,
    )
    checkpoint = os.path.join(folder, "qc.pt")
    train_qc(
        [],
        checkpoint,
        options,
        log=log,
        state_path=os.path.join(folder, "train-state.pt"),
        sets=sets,
        spec=QCSpec(model_inputs=True, disagreement=True),
    )
    scores = {"fold": fold, "sources": sets.train.sources()}
    if fold is not None:
        scores.update(score_qc_fold(plan, fold, checkpoint, sets.models, held))
    atomic_write_json(scores_path, json_safe(scores))
    return scores


def score_qc_fold(plan: QCFoldsPlan, fold: int, checkpoint: str, snapshots: Sequence, held: List) -> Dict:
    """QC fold ``fold`` on its patients: (a) the fold models' own labels, checked as batch work checks them (the
    fold ensemble with flips), (b) the published protocol over varied labels of the same frames."""
    device = default_device(plan.device)
    ensemble = plan.fold_ensemble(fold, device)
    checker = QualityChecker(checkpoint, device=device, segmentation=ensemble)
    patients = acdc_folds(plan.acdc, plan.folds, plan.seed)[fold][:: 5 if plan.quick else 1]
    result = evaluate_qc_acdc(checker, ensemble, plan.acdc, patients, corruptions=2, seed=plan.seed)
    varied = _varied_set(held, lambda case: ensemble, list(snapshots), plan, device, plan.seed + 7919)
    result["protocol"] = protocol_mae(load_qc(checkpoint, device).network, varied, device)
    return {"patients": patients, **result}

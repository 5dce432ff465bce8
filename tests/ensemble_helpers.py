"""Tiny real files for the fold-ensemble tests: a finished 5-fold cross-validation state (``release/folds.py``
layout) and a shipped models folder with its served segmentation model and SHA256SUMS."""

import json
import os

import torch

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.release.cards import update_checksum
from cmrassist_server.release.ensemble import ship_ensemble
from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation

SPEC = NetworkSpec(channels=(8, 16, 32))
PRE = PreprocessConfig()


def tiny_model(path: str, seed: int) -> str:
    """An untrained small segmentation network published at ``path`` (the seed makes each one differ)."""
    torch.manual_seed(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = ModelRecord(kind="segmentation", metric="mean", details={"made_by": "tests", "seed": seed})
    publish_segmentation(path, SPEC.build(), SPEC, PRE, record)
    return path


def cv_state(state: str, variant: str = "2.5d", folds: int = 5, scored: int = 5) -> str:
    """A cross-validation run of ``folds`` folds whose first ``scored`` folds are finished."""
    root = os.path.join(state, variant)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "plan.json"), "w") as f:
        json.dump({"folds": folds, "epochs": 1, "seed": 0, "quick": False}, f)
    for k in range(folds):
        tiny_model(os.path.join(root, f"fold{k}", "segmentation.pt"), seed=100 + k)
        if k < scored:
            with open(os.path.join(root, f"fold{k}", "scores.json"), "w") as f:
                json.dump(fold_scores(k), f)
    return state


def fold_scores(fold: int) -> dict:
    """A fold's ``scores.json`` as ``release/folds.run_folds`` writes it, two held-out patients, known figures:
    LV Dice 0.9 + fold / 100, LV mass over the expert's by ``fold`` g for one patient and 0 for the other."""
    patients = [fold + 1, fold + 6]
    per_patient = {
        f"patient{n:03d}": {"pred": {"lv_mass_g": 100.0 + fold * (i == 0)}, "ref": {"lv_mass_g": 100.0}}
        for i, n in enumerate(patients)
    }
    dice, hd95 = {"LV_all": 0.9 + fold / 100}, {"LV_all": 3.0}
    return {"fold": fold, "patients": patients, "dice": dice, "hd95_mm": hd95, "per_patient": per_patient}


def shipped_models(folder: str, seed: int = 7) -> str:
    """A shipped models folder holding only its served segmentation model and that model's checksum."""
    tiny_model(os.path.join(folder, "segmentation.pt"), seed=seed)
    update_checksum(folder, "segmentation.pt")
    return folder


def shipped_ensemble(root: str) -> str:
    """A shipped models folder with a served model and the 5-model fold ensemble shipped with it."""
    models = shipped_models(os.path.join(root, "models"))
    ship_ensemble(cv_state(os.path.join(root, "state")), "2.5d", models)
    return models

"""The figures of a cross-validation run (``release/folds.py``): per fold and over folds (mean, spread), as
``bench/cv.py`` prints them and the shipped ensemble's card (``release/ensemble.py``) keeps them."""

import glob
import os
from typing import Callable, Dict, List

import numpy as np

from cmrassist_server.release.folds import read_json

#: The clinical figures whose error and signed bias (prediction minus expert) a fold reports.
CLINICAL = ("lv_ef_pct", "rv_ef_pct", "lv_edv_ml", "lv_esv_ml", "rv_edv_ml", "rv_esv_ml", "myo_ed_ml", "myo_es_ml")
CLINICAL += ("lv_mass_g",)


def fold_figures(scores: Dict) -> Dict[str, float]:
    """One fold's figures: Dice and HD95 per class and phase, clinical MAE and signed bias (pred - expert)."""
    out = {f"dice {k}": v for k, v in scores["dice"].items()}
    out.update({f"hd95 {k}": v for k, v in scores["hd95_mm"].items()})
    for key in CLINICAL:
        errors = [p["pred"][key] - p["ref"][key] for p in scores["per_patient"].values() if key in p["pred"]]
        errors = [e for e in errors if e is not None and np.isfinite(e)]
        if errors:
            out[f"mae {key}"] = float(np.mean(np.abs(errors)))
            out[f"bias {key}"] = float(np.mean(errors))
    return out


def cv_table(folds: List[Dict], figures_of: Callable[[Dict], Dict[str, float]] = fold_figures) -> List[str]:
    """Lines of the table: one column per fold, then the mean and the standard deviation over folds.

    Args:
        folds: each fold's ``scores.json`` (with its ``fold`` number).
        figures_of: the named figures of one fold's scores.
    """
    figures = [figures_of(f) for f in folds]
    keys = [k for k in figures[0] if all(k in f for f in figures)]
    head = f"{'figure':22s}" + "".join(f"{'fold ' + str(f['fold']):>9s}" for f in folds) + f"{'mean':>9s}{'sd':>8s}"
    lines = [head]
    for key in keys:
        values = [f[key] for f in figures]
        cells = "".join(f"{v:9.3f}" for v in values)
        lines.append(f"{key:22s}{cells}{np.mean(values):9.3f}{np.std(values):8.3f}")
    return lines


def scored_folds(state: str, variant: str) -> List[Dict]:
    """The ``scores.json`` of every scored fold of ``variant`` in ``state``, fold 0 first (none: ``[]``)."""
    paths = glob.glob(os.path.join(state, variant, "fold*", "scores.json"))
    return sorted((read_json(p) for p in paths), key=lambda s: s["fold"])

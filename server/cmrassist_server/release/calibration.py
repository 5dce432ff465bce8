"""The myocardium's calibration, chosen by cross-validation (issue 25).

The recipe draws the epicardium too far out: over the CV folds the LV mass is 9 g over the expert's, mostly
myocardium laid over the expert's background (``bench/myo_bias.py``). Each fold model labels its own held-out
patients under each candidate ``myocardium_odds`` (``imaging/preprocess.label_map``: myocardium must be that many
times as probable as background); the odds with the smallest LV mass error over the folds is the calibration, kept
as ``<state>/<variant>/calibration.json`` and written into the shipped ensemble's members (``release/ensemble.py``).
The nested figures score each fold with the odds chosen on the other folds alone, so no fold is scored with a
choice it helped to make.
"""

import hashlib
import os
import shutil
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from cmrassist_server.core.checkpoints import atomic_write_json, file_sha256
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.release.cv_report import cv_table, fold_figures, scored_folds
from cmrassist_server.release.folds import json_safe, read_json
from cmrassist_server.segmentation.heldout import evaluate_acdc
from cmrassist_server.segmentation.predictor import SegmentationPredictor

#: Candidate odds, 1 (the plain top class) first.
ODDS = (1.0, 1.5, 2.0, 2.5, 3.0)
#: The file beside the run's ``plan.json``.
CALIBRATION = "calibration.json"
#: The figure the odds are chosen by (``release/cv_report.fold_figures``): the clinically worst one.
CRITERION = "mae lv_mass_g"


def calibrate(
    acdc: str,
    state: str,
    variant: str,
    odds: Sequence[float] = ODDS,
    device: Optional[str] = None,
    progress: Callable[[str], None] = print,
) -> Dict:
    """Score every scored fold's model on its held-out patients under each of ``odds``; choose; write and return
    ``{"criterion", "odds", "candidates": [{"odds", "folds": [figures]}], "nested": [figures with "odds"]}``.

    Raises:
        CMRAssistError: ``state`` holds no scored fold of ``variant``.
    """
    folds = scored_folds(state, variant)
    if len(folds) < 2:  # the nested figures choose on the other folds
        raise CMRAssistError(f"{os.path.join(state, variant)} holds {len(folds)} scored fold(s): calibration needs 2")
    candidates = [{"odds": float(o), "folds": []} for o in odds]
    for scores in folds:
        k = scores["fold"]
        predictor = SegmentationPredictor(_fold_model(state, variant, k), device=device)
        predictor.window_passes = RememberedPasses(predictor.window_passes)
        config = predictor.preprocessor.config
        for candidate in candidates:
            progress(f"[calibrate] fold {k}: myocardium odds {candidate['odds']:g}")
            predictor.preprocessor.config = replace(config, myocardium_odds=candidate["odds"])
            result = evaluate_acdc(predictor, acdc, scores["patients"])
            candidate["folds"].append({"fold": k, **fold_figures(result)})
    models = {str(f["fold"]): file_sha256(_fold_model(state, variant, f["fold"])) for f in folds}
    out = {"criterion": CRITERION, "odds": best_odds(candidates), "models": models, "candidates": candidates}
    out["nested"] = nested_figures(candidates)
    atomic_write_json(os.path.join(state, variant, CALIBRATION), json_safe(out))
    return out


class RememberedPasses:
    """A predictor's ``window_passes``, run once per window: the candidate odds change only how probabilities
    become labels (``imaging/preprocess.label_map``), so each frame's network passes serve every candidate.

    Args:
        passes: the predictor's own ``window_passes``.
    """

    def __init__(self, passes: Callable[..., torch.Tensor]):
        self.passes, self.memo, self.runs = passes, {}, 0

    def __call__(self, window: torch.Tensor, flips: Optional[Sequence[Tuple[int, ...]]] = None, runners=None):
        if runners is not None:  # a caller's own runners: not what the memo holds
            return self.passes(window, flips, runners)
        digest = hashlib.sha1(window.detach().cpu().numpy().tobytes()).hexdigest()
        key = (digest, tuple(window.shape), None if flips is None else tuple(flips))
        if key not in self.memo:
            self.memo[key] = self.passes(window, flips)
            self.runs += 1
        return self.memo[key]


def _mean_criterion(candidate: Dict, without_fold: Optional[int]) -> float:
    values = [f[CRITERION] for f in candidate["folds"] if f["fold"] != without_fold]
    return sum(values) / len(values)


def best_odds(candidates: List[Dict], without_fold: Optional[int] = None) -> float:
    """The odds with the smallest mean :data:`CRITERION` over the folds (all, or all but ``without_fold``); on a
    tie, the one nearest 1 (the least change)."""
    best = min(candidates, key=lambda c: (_mean_criterion(c, without_fold), abs(c["odds"] - 1.0)))
    return best["odds"]


def nested_figures(candidates: List[Dict]) -> List[Dict]:
    """Each fold's figures under the odds chosen on the other folds (``odds`` says which)."""
    out = []
    for row in candidates[0]["folds"]:
        k = row["fold"]
        chosen = best_odds(candidates, without_fold=k)
        figures = next(c for c in candidates if c["odds"] == chosen)["folds"]
        out.append({**next(f for f in figures if f["fold"] == k), "odds": chosen})
    return out


def read_calibration(state: str, variant: str) -> Optional[Dict]:
    """A run's ``calibration.json``, ``None`` where it has none."""
    path = os.path.join(state, variant, CALIBRATION)
    return read_json(path) if os.path.isfile(path) else None


def _fold_model(state: str, variant: str, fold: int) -> str:
    return os.path.join(state, variant, f"fold{fold}", "segmentation.pt")


def calibration_odds(state: str, variant: str) -> float:
    """The odds a run's calibration chose, 1 where it has none.

    Raises:
        CMRAssistError (409): the calibration was chosen on other fold models than the run now holds.
    """
    calibration = read_calibration(state, variant)
    if not calibration:
        return 1.0
    changed = [
        k for k, digest in calibration["models"].items() if file_sha256(_fold_model(state, variant, k)) != digest
    ]
    if changed:
        raise CMRAssistError(
            f"the calibration in {os.path.join(state, variant)} was chosen on other models of fold(s) "
            f"{', '.join(changed)}: run cmrassist calibrate-release again",
            409,
        )
    return float(calibration["odds"])


def _figures(row: Dict) -> Dict[str, float]:
    return {k: v for k, v in row.items() if k not in ("fold", "odds") and v is not None}


def calibration_tables(calibration: Dict) -> List[str]:
    """Lines: the criterion's fold mean under each candidate, then the nested table (``cv_report.cv_table``)."""
    lines = [f"{CRITERION} (mean over folds) by myocardium odds:"]
    for c in calibration["candidates"]:
        lines.append(f"  {c['odds']:4g}: {_mean_criterion(c, None):7.3f}")
    lines.append(f"chosen: {calibration['odds']:g}; nested (each fold with the odds chosen on the others):")
    return lines + cv_table(calibration["nested"], figures_of=_figures)


def calibration_section(calibration: Optional[Dict], carrier: str = "The members carry") -> str:
    """The model card's section on the calibration (empty without one).

    Args:
        calibration: the run's ``calibration.json``.
        carrier: who carries the odds, opening the section (the ensemble's members, or the served model).
    """
    if not calibration:
        return ""
    return f"""
## Myocardium calibration

{carrier} `myocardium_odds` {calibration["odds"]:g} (`imaging/preprocess.label_map`): myocardium is kept
only where it is at least that many times as probable as background. It was chosen on the fold models' held-out
patients to bring the LV mass error down (`cmrassist calibrate-release`, `release/calibration.py`); the
cross-validation table of `ensemble.md` is without it. Each fold scored with the odds chosen on the other folds
alone:

```
{chr(10).join(calibration_tables(calibration))}
```
"""


def write_shipped(source: str, target: str, odds: float) -> None:
    """A model as it ships: a copy of ``source`` where ``odds`` is 1, else with the odds written in."""
    if odds == 1.0:
        shutil.copyfile(source, target)
    else:
        write_calibrated(source, target, odds)


def write_calibrated(source: str, target: str, odds: float) -> None:
    """Write the segmentation checkpoint ``source`` to ``target`` with ``myocardium_odds`` set to ``odds`` (the
    weights and everything else as they are)."""
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["preprocess"] = {**(payload.get("preprocess") or {}), "myocardium_odds": float(odds)}
    torch.save(payload, target)

"""``cmrassist train-release --folds``: the cross-validation of the segmentation recipe on an ACDC-layout folder
(phantoms), fold by fold, resumable, refusing to overwrite a run, reported by ``bench/cv.py``."""

import json
import os
import subprocess
import sys

import pytest
from test_recipe import _acdc_of_phantoms

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.release.cv_report import cv_table, fold_figures
from cmrassist_server.release.folds import FoldsPlan, acdc_folds, run_folds


def _cli(*args):
    cmd = [os.path.join(os.path.dirname(sys.executable), "cmrassist"), "train-release", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_a_fold_is_trained_on_the_other_folds_scored_on_its_own_and_never_redone(tmp_path):
    acdc, state = _acdc_of_phantoms(str(tmp_path / "acdc")), str(tmp_path / "state")
    folds = acdc_folds(acdc, 5, seed=0)
    assert sorted(n for f in folds for n in f) == list(range(1, 101))
    args = ("--acdc", acdc, "--folds", "5", "--fold", "1", "--state", state, "--epochs", "1", "--quick")
    done = _cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    fold = os.path.join(state, "2.5d", "fold1")
    with open(os.path.join(fold, "scores.json")) as f:
        scores = json.load(f)
    assert scores["patients"] == folds[1] and len(scores["per_patient"]) == 20
    plan = FoldsPlan(acdc, state, folds=5, epochs=1, only=[1], quick=True)
    with pytest.raises(CMRAssistError, match="--resume continues it"):  # without --resume: nothing overwritten
        run_folds(plan, resume=False, log=lambda *a, **k: None)
    stamp, said = os.path.getmtime(os.path.join(fold, "scores.json")), []
    assert run_folds(plan, resume=True, log=lambda *a, **k: None, progress=said.append)[0]["patients"] == folds[1]
    assert said == [] and os.path.getmtime(os.path.join(fold, "scores.json")) == stamp  # a scored fold: not redone
    figures = fold_figures(scores)
    assert {"dice LV_all", "bias lv_mass_g", "bias myo_es_ml", "mae lv_ef_pct"} <= set(figures)
    assert cv_table([scores])[1].startswith("dice LV_ED")

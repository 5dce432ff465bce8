"""The QC trained on out-of-fold predictions (``release/qc_folds.py``): every patient is seen through the fold
models that never saw it, a QC fold never trains on its own patients, and its scores hold (a) and (b)."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from qc_cv import qc_fold_figures
from test_recipe import _acdc_of_phantoms

from cmrassist_server.core.checkpoints import ModelRecord, atomic_write_json
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.release.cv_report import cv_table
from cmrassist_server.release.folds import acdc_folds
from cmrassist_server.release.qc_folds import QCFoldsPlan, oof_sets, run_qc_fold
from cmrassist_server.segmentation.ensemble import EnsemblePredictor
from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation

QUIET = lambda *a, **k: None  # noqa: E731


def _fold_model(state: str, k: int) -> None:
    """Fold ``k`` of a finished 2.5D CV (untrained: the view's origin is under test, not its accuracy)."""
    preprocess = PreprocessConfig(neighbour_slices=1)
    spec = NetworkSpec(channels=(8, 16, 32), in_channels=preprocess.input_count())
    torch.manual_seed(k)
    folder = os.path.join(state, "2.5d", f"fold{k}")
    os.makedirs(folder, exist_ok=True)
    record = ModelRecord("segmentation", "mean")
    publish_segmentation(os.path.join(folder, "segmentation.pt"), spec.build().eval(), spec, preprocess, record)
    atomic_write_json(os.path.join(folder, "scores.json"), {"fold": k})


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    return _acdc_of_phantoms(str(tmp_path_factory.mktemp("qc-folds") / "acdc"))


def _plan(acdc: str, state: str) -> QCFoldsPlan:
    return QCFoldsPlan(acdc, state, epochs=1, corruptions_per_case=1, snapshots=0, quick=True, device="cpu")


def test_every_patient_is_seen_by_the_fold_model_that_never_saw_it(acdc, tmp_path):
    state = str(tmp_path / "state")
    for k in range(4):
        _fold_model(state, k)
    with pytest.raises(CMRAssistError, match="fold4/segmentation.pt is not a finished fold model"):
        oof_sets(_plan(acdc, state), 2, QUIET)
    _fold_model(state, 4)
    sets, held, fold_of = oof_sets(_plan(acdc, state), 2, QUIET)
    folds = acdc_folds(acdc, 5, 0)
    assert {fold_of[c.subject] for c in held} == {2} and len(held) == 2 * len(folds[2][::5])
    for part in (sets.train, sets.val):
        assert part.cases and all(fold_of[c.subject] != 2 for c in part.cases)  # never its own patients
        assert part.disagreement is not None and "out-of-fold" in part.sources()
    case = sets.train.cases[0]
    own = EnsemblePredictor([os.path.join(state, "2.5d", f"fold{fold_of[case.subject]}", "segmentation.pt")])
    expected = own.stack_view(case.image)  # the fold model as batch work runs it (with flips), loaded afresh
    assert np.array_equal(sets.train.probs[0], expected.probs)
    np.testing.assert_allclose(sets.train.disagreement[0], expected.disagreement, atol=1e-6)
    assert expected.disagreement.max() > 0  # the flips of an untrained model disagree
    other = EnsemblePredictor(
        [os.path.join(state, "2.5d", f"fold{(fold_of[case.subject] + 1) % 5}", "segmentation.pt")]
    )
    assert not np.array_equal(sets.train.probs[0], other.stack_view(case.image).probs)


@pytest.mark.slow
def test_a_qc_fold_is_trained_scored_both_ways_and_never_redone(acdc, tmp_path):
    state = str(tmp_path / "state")
    for k in range(5):
        _fold_model(state, k)
    plan = _plan(acdc, state)
    cli = os.path.join(os.path.dirname(sys.executable), "cmrassist")
    args = ["--acdc", acdc, "--state", state, "--fold", "1", "--epochs", "1", "--corruptions", "1", "--snapshots", "0"]
    done = subprocess.run([cli, "train-qc-release", *args, "--quick"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    scores = run_qc_fold(plan, 1, resume=False, log=QUIET)  # the CLI's scores, read back
    assert scores["patients"] == acdc_folds(acdc, 5, 0)[1][::5]
    assert {"model", "varied", "protocol", "qc_seconds_per_subject"} <= set(scores)
    assert scores["model"]["lv_cavity"]["subjects"] == 2 * len(scores["patients"])
    bins = scores["protocol"]["bins"]
    assert list(bins) == ["0.0-0.2", "0.2-0.3", "0.3-0.4", "0.4-0.5", "0.5-0.6", "0.6-0.7", "0.7-1.0"]
    assert sum(b["slices"] for b in bins.values()) > 0 and 0 <= scores["protocol"]["slice_mae"] <= 1
    table = cv_table([scores], qc_fold_figures)  # what bench/qc_cv.py prints
    assert table[0].split() == ["figure", "fold", "1", "mean", "sd"]
    assert any(line.startswith("b protocol slice_mae") for line in table)
    folder = plan.folder(1)
    stamp = os.path.getmtime(os.path.join(folder, "qc.pt"))
    assert run_qc_fold(plan, 1, resume=False, log=QUIET) == scores  # scored: read back, not redone
    assert os.path.getmtime(os.path.join(folder, "qc.pt")) == stamp
    os.remove(os.path.join(folder, "scores.json"))
    with pytest.raises(CMRAssistError, match="--resume continues it"):
        run_qc_fold(plan, 1, resume=False, log=QUIET)
    # The CLI's --corruptions and --snapshots reached the plan (recorded with the fold); other options are refused.
    with pytest.raises(CMRAssistError, match=r"other options: corruptions_per_case 1 \(asked 2\)"):
        run_qc_fold(dataclasses.replace(plan, corruptions_per_case=2), 1, resume=True, log=QUIET)

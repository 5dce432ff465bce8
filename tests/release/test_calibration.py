"""The myocardium's calibration (``release/calibration.py``): chosen on a cross-validation's held-out folds with the
real predictor and scoring, the nested choice never uses the fold it scores, a calibrated checkpoint changes only
the shipped model's myocardium against background, and ``ship-ensemble`` writes it into the members."""

import dataclasses
import json
import os

import pytest
import torch
from ensemble_helpers import cv_state, shipped_models, tiny_model
from test_recipe import _acdc_of_phantoms

from cmrassist_server.core.checkpoints import load
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.release.calibration import (
    CALIBRATION,
    CRITERION,
    ODDS,
    RememberedPasses,
    best_odds,
    calibrate,
    calibration_tables,
    nested_figures,
    write_calibrated,
)
from cmrassist_server.release.ensemble import ship_ensemble
from cmrassist_server.release.shipped import shipped_folder
from cmrassist_server.segmentation.batch import read_manifest
from cmrassist_server.segmentation.predictor import SegmentationPredictor


def _candidates(table):
    """``{odds: [criterion of fold 0, fold 1, ...]}`` as :func:`calibrate` keeps them."""
    return [
        {"odds": odds, "folds": [{"fold": k, CRITERION: v, "dice MYO_all": 0.8} for k, v in enumerate(values)]}
        for odds, values in table.items()
    ]


def test_the_choice_is_the_smallest_mass_error_and_the_nested_one_never_sees_its_fold():
    # Fold 0 alone prefers odds 3; the other folds prefer 2.
    candidates = _candidates({1.0: [9.0, 9.0, 9.0], 2.0: [8.0, 5.0, 5.0], 3.0: [1.0, 6.0, 6.0]})
    assert best_odds(candidates) == 3.0  # fold means 9, 6 and 4.33
    nested = nested_figures(candidates)
    assert [row["odds"] for row in nested] == [2.0, 3.0, 3.0]
    assert [row[CRITERION] for row in nested] == [8.0, 6.0, 6.0]
    tie = _candidates({1.0: [4.0, 4.0], 1.5: [4.0, 4.0], 0.5: [4.0, 4.0]})
    assert best_odds(tie) == 1.0  # a tie keeps the least change


def test_calibrate_scores_every_fold_under_every_odds_and_ships_the_choice(tmp_path):
    acdc = _acdc_of_phantoms(str(tmp_path / "acdc"), patients=10)
    state = cv_state(str(tmp_path / "state"))
    out = calibrate(acdc, state, "2.5d", odds=(1.0, 2.0), progress=lambda line: None)
    assert [c["odds"] for c in out["candidates"]] == [1.0, 2.0] and ODDS[0] == 1.0
    assert all([f["fold"] for f in c["folds"]] == [0, 1, 2, 3, 4] for c in out["candidates"])
    assert out["odds"] == best_odds(out["candidates"]) and len(out["nested"]) == 5
    assert os.path.isfile(os.path.join(state, "2.5d", CALIBRATION))
    assert any(line.startswith("chosen:") for line in calibration_tables(out))

    # Whatever was chosen, ship a calibration of 2 and check the members carry it, weights untouched.
    (tmp_path / "state" / "2.5d" / CALIBRATION).write_text(json.dumps({**out, "odds": 2.0}))
    models = shipped_models(str(tmp_path / "models"))
    manifest = ship_ensemble(state, "2.5d", models)
    assert manifest["myocardium_odds"] == 2.0 and read_manifest(models)["myocardium_odds"] == 2.0
    for k in range(5):
        member = load(os.path.join(models, f"ensemble/fold{k}.pt"))
        source = load(os.path.join(state, "2.5d", f"fold{k}", "segmentation.pt"))
        assert member.preprocess["myocardium_odds"] == 2.0
        assert all(torch.equal(member.state_dict[n], t) for n, t in source.state_dict.items())
    assert "## Myocardium calibration" in open(os.path.join(models, "ensemble.md")).read()

    # A fold model replaced after the calibration: the calibration no longer describes it, and nothing ships.
    tiny_model(os.path.join(state, "2.5d", "fold3", "segmentation.pt"), seed=999)
    with pytest.raises(CMRAssistError, match="other models of fold"):
        ship_ensemble(state, "2.5d", models)


def test_a_calibration_needs_two_scored_folds(tmp_path):
    state = cv_state(str(tmp_path / "state"), scored=1)
    with pytest.raises(CMRAssistError, match="calibration needs 2"):
        calibrate(str(tmp_path / "acdc"), state, "2.5d", progress=lambda line: None)


def test_a_calibrated_model_only_gives_up_myocardium_to_background(tmp_path):
    shipped = os.path.join(shipped_folder(), "segmentation.pt")
    uncalibrated, calibrated = str(tmp_path / "uncalibrated.pt"), str(tmp_path / "calibrated.pt")
    write_calibrated(shipped, uncalibrated, 1.0)  # the shipped model carries the CV's odds: compare with none
    write_calibrated(shipped, calibrated, 3.0)
    image = make_phantom(11).ed_image
    plain = SegmentationPredictor(uncalibrated, device="cpu", engine="torch").segment(image)
    predictor = SegmentationPredictor(calibrated, device="cpu", engine="torch")
    assert predictor.preprocessor.config.myocardium_odds == 3.0
    labels = predictor.segment(image)
    assert (labels == 2).sum() < (plain == 2).sum()
    changed = labels != plain
    # Myocardium gives way, mostly to background; the label clean-up after it (largest components) may move a few
    # more pixels.
    assert ((plain[changed] == 2) & (labels[changed] != 2)).mean() > 0.95 and (labels[changed] == 0).mean() > 0.8
    assert not ((labels == 2) & (plain != 2)).any()  # the odds never make myocardium
    for cavity in (1, 3):
        assert abs(int((labels == cavity).sum()) - int((plain == cavity).sum())) <= 0.02 * (plain == cavity).sum()


def test_remembered_passes_run_the_network_once_a_window_and_label_as_a_fresh_run(tmp_path):
    shipped = os.path.join(shipped_folder(), "segmentation.pt")
    image = make_phantom(12).ed_image
    predictor = SegmentationPredictor(shipped, device="cpu", engine="torch")
    passes = predictor.window_passes = RememberedPasses(predictor.window_passes)
    first = predictor.segment(image)
    runs = passes.runs
    assert runs >= 1  # the frame's window (and the heart probe, where the window is on)
    predictor.preprocessor.config = dataclasses.replace(predictor.preprocessor.config, myocardium_odds=3.0)
    calibrated = predictor.segment(image)
    assert passes.runs == runs  # another odds: no new network pass
    fresh = SegmentationPredictor(shipped, device="cpu", engine="torch")
    fresh.preprocessor.config = predictor.preprocessor.config
    assert (fresh.segment(image) == calibrated).all() and (calibrated == 2).sum() < (first == 2).sum()

"""The annotation campaign simulator (``bench/campaign.py``, issue 24): its bookkeeping on crafted labels, and every
strategy end to end on phantoms through a real server, with budgets respected and the counts adding up."""

import os

import numpy as np
import pytest
import SimpleITK as sitk
from campaign import main, reference_budget
from campaign_setup import phantom_cohort
from campaign_sim import cells, correct, differing


def test_correcting_every_differing_cell_gives_the_experts_label_and_each_cell_costs_one():
    truth = np.zeros((3, 20, 20), np.uint8)
    truth[0, 5:15, 5:15], truth[0, 8:12, 8:12], truth[1, 2:6, 2:6] = 2, 3, 1
    label = np.roll(truth, 2, axis=2)
    label[2, 0:3, 0:3] = 3  # a class the expert has nowhere on that slice
    touched = differing(label, truth)
    assert touched == {(0, 2), (0, 3), (1, 1), (2, 3)}
    np.testing.assert_array_equal(correct(label, truth, touched), truth)
    assert cells(truth) == {(0, 2), (0, 3), (1, 1)}  # drawing from scratch: every class on every slice it is on
    partly = correct(label, truth, {(2, 3)})
    assert differing(partly, truth) == {(0, 2), (0, 3), (1, 1)}


def _tiny(tmp_path) -> list:
    """A campaign of two seed, one cohort and one held-out phantom, one epoch a round, kept in ``tmp_path``."""
    sizes = ["--seed-subjects", "2", "--cohort", "1", "--held-out", "1", "--round-subjects", "2"]
    return sizes + ["--epochs", "1", "--seed-epochs", "1", "--work", str(tmp_path / "work")]


@pytest.mark.slow
def test_every_strategy_runs_end_to_end_on_phantoms_within_its_budget(tmp_path):
    summary = main(_tiny(tmp_path) + ["--out", str(tmp_path / "out")])
    cohort = phantom_cohort(2, 1, 1)
    budget = reference_budget(cohort)
    rounds = summary["rounds"]
    assert sorted(rounds) == ["a", "b", "c", "d", "e"]
    for strategy, rows in rounds.items():
        assert [r["round"] for r in rows] == [0, 1], strategy  # the seed model, then the one round
        assert all(r["expert_cells"] <= budget for r in rows), strategy
        assert rows[0]["cohort"] == rounds["a"][0]["cohort"]  # every strategy starts from the same seed model
    last = {s: rows[-1] for s, rows in rounds.items()}
    assert last["a"]["expert_cells"] == budget and last["a"]["nonexpert_cells"] == 0
    assert last["b"]["expert_cells"] == last["c"]["expert_cells"]  # random review: as many cells as the QC chose
    assert 0 < last["e"]["nonexpert_cells"] < last["d"]["nonexpert_cells"]  # propagation and exclusion save work
    assert last["a"]["labelled_frames"] == 2 and last["a"]["cohort"]["dice_lv"] == 1.0
    studies = os.path.join(summary["work"], "a", "studies")
    for subject in cohort.cohort:  # the expert strategy's labels, as the server stored them, are the ground truth
        for frame in subject.frames:
            stored = sitk.ReadImage(os.path.join(studies, "labels", "final", f"{frame.image_id}.nii.gz"))
            canonical = frame.orientation.to_canonical(sitk.GetArrayFromImage(stored))
            np.testing.assert_array_equal(canonical, frame.truth)
    assert os.path.isfile(tmp_path / "out" / "campaign.png") and "strategies" in summary["headline"]

    # Run again in the same work folder: the seed site made for this setting serves again, untrained anew.
    seed_log = os.path.join(summary["work"], "seed-server.log")
    seeded_at = os.path.getmtime(seed_log)
    again = main(_tiny(tmp_path) + ["--strategies", "a", "--out", str(tmp_path / "again")])
    assert os.path.getmtime(seed_log) == seeded_at
    assert again["rounds"]["a"][0]["cohort"] == rounds["a"][0]["cohort"]
    assert again["rounds"]["a"][-1]["expert_cells"] == budget

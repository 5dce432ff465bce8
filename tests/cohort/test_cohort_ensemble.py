"""A cohort run over a model folder with the shipped fold ensemble installed: its members travel to the workers,
the labels are the ensemble's (with flips), and the run record and every result name each member's SHA-256. A
named segmentation model is used alone."""

import json
import os

import numpy as np
import pytest
from cohort_helpers import analyse, label_array
from ensemble_helpers import shipped_ensemble

from cmrassist_server.cohort.models import ModelFiles, model_ids
from cmrassist_server.imaging.imageio import read_image
from cmrassist_server.io.studies import phantom_studies
from cmrassist_server.release.shipped import install_shipped
from cmrassist_server.segmentation.batch import batch_predictor, batch_segmentation, read_manifest


@pytest.fixture()
def ensemble_dir(tmp_path):
    """A server's model folder after the shipped models (a served model and its 5-model ensemble) were installed."""
    model_dir = str(tmp_path / "model_dir")
    outcome = install_shipped(model_dir, shipped_ensemble(str(tmp_path)))
    assert outcome == {
        "segmentation": "installed",
        "slice_position": "none shipped",
        "qc": "none shipped",
        "ensemble": "installed",
    }
    return model_dir


def test_the_run_models_carry_every_member_and_a_named_model_goes_alone(ensemble_dir):
    files = ModelFiles.resolve(ensemble_dir)
    manifest = read_manifest(ensemble_dir)
    assert files.ensemble == tuple(os.path.join(ensemble_dir, m["file"]) for m in manifest["members"])
    payloads, described = files.snapshot()
    assert len(payloads["ensemble"]) == 5 and payloads["qc"] is None
    assert [m["sha256"] for m in described["ensemble"]] == [m["sha256"] for m in manifest["members"]]
    assert described["batch"] == {"segmentation": batch_segmentation(ensemble_dir).description, "flips": True}
    assert model_ids(described)["ensemble"] == [m["sha256"] for m in manifest["members"]]
    alone = ModelFiles.resolve(segmentation=os.path.join(ensemble_dir, "segmentation.pt"))
    assert alone.ensemble == () and alone.snapshot()[1]["ensemble"] is None


@pytest.mark.slow
def test_a_cohort_run_segments_with_the_ensemble_and_names_every_member(ensemble_dir, ray_cluster, tmp_path):
    studies = str(tmp_path / "studies")
    phantom_studies(studies, 1, seed=170, labelled_fraction=0.0, with_cine=True, n_frames=4)
    out = str(tmp_path / "out")
    lines = analyse(studies, out, ensemble_dir, "--address", ray_cluster, "--frames", "ed-es", "--no-review-store")
    assert lines[-1]["event"] == "done" and (lines[-1]["done"], lines[-1]["failed"]) == (1, 0)
    members = [m["sha256"] for m in read_manifest(ensemble_dir)["members"]]
    run = json.load(open(os.path.join(out, "run.json")))
    assert [m["sha256"] for m in run["models"]["ensemble"]] == members
    assert "5-model fold ensemble" in run["models"]["batch"]["segmentation"]
    record = json.load(open(os.path.join(out, "subjects", "phantom170.json")))
    assert record["stamp"]["models"]["ensemble"] == members and record["stamp"]["models"]["flips"] is True
    # The labels are the ensemble's, exactly as its predictor segments the cine in one piece.
    labels = batch_predictor(batch_segmentation(ensemble_dir), device="cpu").segment(
        read_image(os.path.join(studies, "phantom170_cine.nii.gz"))
    )
    assert len(record["frames"]) == 2
    for frame in record["frames"]:
        assert np.array_equal(label_array(out, frame["label"])[0], labels[frame["frame"] - 1])

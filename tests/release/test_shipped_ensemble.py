"""The shipped fold ensemble on real files: ``cmrassist ship-ensemble`` writes members, manifest and checksums that
a server's model folder installs and batch work reads back; a damaged member refuses the ensemble (the single
model still installs); a retrained served model turns the ensemble off for batch work, a restored one on again."""

import json
import os
import subprocess
import sys

import pytest
from ensemble_helpers import cv_state, shipped_ensemble, shipped_models, tiny_model

from cmrassist_server.core.checkpoints import file_sha256
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.model_versions import SHIPPED, make_current
from cmrassist_server.release.ensemble import fold_models
from cmrassist_server.release.shipped import install_shipped, read_checksums
from cmrassist_server.segmentation.batch import MANIFEST, batch_segmentation, read_manifest, served_batch

CLI = os.path.join(os.path.dirname(sys.executable), "cmrassist")


def _flip_a_byte(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_the_manifest_round_trips_from_a_cv_run_to_batch_work(tmp_path):
    models = shipped_models(str(tmp_path / "models"))
    state = cv_state(str(tmp_path / "state"))
    done = subprocess.run(
        [CLI, "ship-ensemble", "--state", state, "--variant", "2.5d", "--models", models],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "5-model 2.5d fold ensemble" in done.stdout
    manifest = read_manifest(models)
    assert manifest["served_sha256"] == file_sha256(os.path.join(models, "segmentation.pt"))
    assert [m["file"] for m in manifest["members"]] == [f"ensemble/fold{k}.pt" for k in range(5)]
    assert manifest["members"][2]["held_out_patients"] == [3, 8] and "ship-ensemble" in manifest["command"]
    sums = read_checksums(models)
    for k, member in enumerate(manifest["members"]):
        source = os.path.join(state, "2.5d", f"fold{k}", "segmentation.pt")
        assert member["sha256"] == sums[member["file"]] == file_sha256(source)
        assert os.path.getsize(os.path.join(models, member["file"])) < 25 * 1024 * 1024
    assert sums[MANIFEST] == file_sha256(os.path.join(models, MANIFEST))
    card = open(os.path.join(models, "ensemble.md")).read()  # the CV figures: fold columns, mean and spread
    rows = {line.split()[0] + " " + line.split()[1]: line.split()[2:] for line in card.splitlines() if "  " in line}
    assert rows["dice LV_all"] == ["0.900", "0.910", "0.920", "0.930", "0.940", "0.920", "0.014"]
    assert rows["bias lv_mass_g"][-2:] == ["1.000", "0.707"] and rows["mae lv_mass_g"][0] == "0.000"
    assert "--folds 5 --variant 2.5d --epochs 1 --seed 0" in card and "doi:10.1109/TMI.2018.2837502" in card

    model_dir = str(tmp_path / "model_dir")
    outcome = install_shipped(model_dir, models)
    assert outcome["segmentation"] == "installed" and outcome["ensemble"] == "installed"
    assert read_manifest(model_dir) == manifest
    choice = batch_segmentation(model_dir)
    assert choice.ensemble and choice.checkpoints == tuple(
        os.path.join(model_dir, f"ensemble/fold{k}.pt") for k in range(5)
    )
    assert "5-model fold ensemble with flips" in choice.description
    assert install_shipped(model_dir, models)["ensemble"] == "present"


def test_unfinished_or_other_runs_are_refused_clearly(tmp_path):
    models = shipped_models(str(tmp_path / "models"))
    unfinished = cv_state(str(tmp_path / "unfinished"), scored=3)
    done = subprocess.run(
        [CLI, "ship-ensemble", "--state", unfinished, "--models", models], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and "fold(s) 3, 4" in done.stderr and "--resume" in done.stderr
    assert not os.path.exists(os.path.join(models, MANIFEST))
    with pytest.raises(CMRAssistError, match="a 4-fold run"):
        fold_models(cv_state(str(tmp_path / "four"), folds=4), "2.5d")
    with pytest.raises(CMRAssistError, match="no cross-validation run of variant '2d'"):
        fold_models(unfinished, "2d")


def test_a_damaged_member_refuses_the_ensemble_and_the_single_model_still_installs(tmp_path):
    models = shipped_ensemble(str(tmp_path))
    _flip_a_byte(os.path.join(models, "ensemble", "fold3.pt"))
    model_dir = str(tmp_path / "model_dir")
    outcome = install_shipped(model_dir, models)
    assert outcome["segmentation"] == "installed"
    assert outcome["ensemble"].startswith("refused") and "fold3.pt does not match its checksum" in outcome["ensemble"]
    assert not os.path.exists(os.path.join(model_dir, MANIFEST))
    assert not os.path.exists(os.path.join(model_dir, "ensemble"))  # nothing of a refused ensemble is installed
    choice = batch_segmentation(model_dir)
    assert not choice.ensemble and choice.checkpoints == (os.path.join(model_dir, "segmentation.pt"),)


def test_a_member_damaged_after_installation_leaves_batch_work_on_the_served_model(tmp_path):
    models = shipped_ensemble(str(tmp_path))
    model_dir = str(tmp_path / "model_dir")
    install_shipped(model_dir, models)
    _flip_a_byte(os.path.join(model_dir, "ensemble", "fold0.pt"))
    choice = batch_segmentation(model_dir)
    assert not choice.ensemble and "unusable" in choice.description and "fold0.pt" in choice.description


def test_a_retrained_served_model_turns_the_ensemble_off_for_batch_work(tmp_path):
    models = shipped_ensemble(str(tmp_path))
    model_dir = str(tmp_path / "model_dir")
    install_shipped(model_dir, models)
    served = os.path.join(model_dir, "segmentation.pt")
    batch = served_batch(served, device="cpu")
    assert len(batch.get().members) == 5
    tiny_model(served, seed=999)  # what a site's training publishes over the served model
    choice = batch_segmentation(model_dir)
    assert not choice.ensemble and choice.checkpoints == (served,) and "retrained here" in choice.description
    predictor = batch.get()  # the served model changed: batch work chose again
    assert len(predictor.members) == 1 and predictor.record["batch"] == choice.description
    assert predictor.record["ensemble"] == [served] and predictor.record["flips"] is True
    make_current(served, SHIPPED)  # the shipped version made current again: its ensemble serves again
    assert batch_segmentation(model_dir).ensemble and len(batch.get().members) == 5


def test_a_manifest_naming_files_outside_its_folder_is_refused(tmp_path):
    models = shipped_ensemble(str(tmp_path))
    path = os.path.join(models, MANIFEST)
    manifest = json.load(open(path))
    manifest["members"][0]["file"] = "../segmentation.pt"
    json.dump(manifest, open(path, "w"))
    with pytest.raises(CMRAssistError, match="is not a fold-ensemble manifest"):
        read_manifest(models)
    outcome = install_shipped(str(tmp_path / "model_dir"), models)
    assert "does not match its checksum" in outcome["ensemble"]  # the edited manifest fails SHA256SUMS first

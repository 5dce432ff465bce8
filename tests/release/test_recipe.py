"""``cmrassist train-release`` end to end on a tiny budget: an ACDC-layout folder of 100 phantom patients in,
the three models, their cards (held-out figures, command, licence) and checksums the server accepts out."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import SimpleITK as sitk
import torch
from ensemble_helpers import cv_state, shipped_ensemble

from cmrassist_server.core.checkpoints import file_sha256, load, read_record
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.release.calibration import CALIBRATION, calibrate
from cmrassist_server.release.shipped import MODELS, install_shipped, verified, verified_file
from cmrassist_server.segmentation.batch import batch_segmentation, read_manifest


def _acdc_of_phantoms(root: str, distinct: int = 5, patients: int = 100) -> str:
    """``patients`` patients in the ACDC layout, made of ``distinct`` phantoms (hard links: the files are written once)."""
    os.makedirs(root)
    written = []
    for k in range(distinct):
        p = make_phantom(300 + k, with_cine=False)
        files = {}
        for phase, image, label in (("ed", p.ed_image, p.ed_label), ("es", p.es_image, p.es_label)):
            files[phase] = (os.path.join(root, f"_{k}_{phase}.nii.gz"), os.path.join(root, f"_{k}_{phase}_gt.nii.gz"))
            sitk.WriteImage(image, files[phase][0])
            sitk.WriteImage(label, files[phase][1])
        written.append((files, 1 + p.anatomy.es_frame))
    for n in range(1, patients + 1):
        files, es = written[n % distinct]
        name, folder = f"patient{n:03d}", os.path.join(root, f"patient{n:03d}")
        os.makedirs(folder)
        with open(os.path.join(folder, "Info.cfg"), "w") as f:
            f.write(f"ED: 1\nES: {es}\nGroup: {('DCM', 'HCM', 'MINF', 'NOR', 'RV')[(n - 1) // 20]}\nNbFrame: 12\n")
        for phase, frame in (("ed", 1), ("es", es)):
            os.link(files[phase][0], os.path.join(folder, f"{name}_frame{frame:02d}.nii.gz"))
            os.link(files[phase][1], os.path.join(folder, f"{name}_frame{frame:02d}_gt.nii.gz"))
    return root


@pytest.mark.slow
def test_the_recipe_makes_every_model_with_its_card_and_checksum(tmp_path):
    acdc = _acdc_of_phantoms(str(tmp_path / "acdc"))
    out = str(tmp_path / "models")
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "cmrassist"),
        "train-release",
        "--acdc",
        acdc,
        "--out",
        out,
        "--epochs",
        "segmentation=1,slice_position=1,qc=1",
        "--minutes",
        "segmentation=0.3,slice_position=0.2,qc=0.3,qc_snapshot=0.05",
        "--seed",
        "3",
        "--quick",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in MODELS:
        assert verified(out, name)  # the checksum file lists it and matches
        with open(os.path.join(out, f"{name}.md")) as f:
            card = f.read()
        assert f"--models {name}" in card and "--seed 3 --quick" in card and "not a model to ship" in card
        assert "Held-out figures" in card and "held out: 017, 038, 059, 080" in card and "Research use only" in card
    with open(os.path.join(out, "segmentation.md")) as f:
        assert "LV" in f.read()  # the held-out Dice table
    with open(os.path.join(out, "qc.md")) as f:
        assert "sliceMAE" in f.read()
    assert install_shipped(str(tmp_path / "server_models"), out) == dict.fromkeys(MODELS, "installed")
    _ship_served(acdc, out, tmp_path)


def _ship_served(acdc: str, run: str, tmp_path) -> None:
    """The run's segmentation model shipped as the served one beside an ensemble, with a CV's calibration."""
    models = shipped_ensemble(str(tmp_path / "ship"))
    cli = os.path.join(os.path.dirname(sys.executable), "cmrassist")
    # A cross-validation of other models (the tiny ensemble's): its calibration does not apply, nothing changes.
    before = open(os.path.join(models, "SHA256SUMS")).read()
    other = ["ship-served", "--run", run, "--state", str(tmp_path / "ship" / "state"), "--models", models]
    done = subprocess.run([cli, *other], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "takes other inputs" in done.stderr
    assert open(os.path.join(models, "SHA256SUMS")).read() == before

    # The recipe's cross-validation (its fold models take the run's inputs), calibrated.
    state = cv_state(str(tmp_path / "cv"))
    for k in range(5):
        shutil.copyfile(
            os.path.join(run, "segmentation.pt"), os.path.join(state, "2.5d", f"fold{k}", "segmentation.pt")
        )
    calibration = calibrate(acdc, state, "2.5d", odds=(1.0, 2.0), progress=lambda line: None)
    with open(os.path.join(state, "2.5d", CALIBRATION), "w") as f:
        json.dump({**calibration, "odds": 2.0}, f)  # whatever was chosen on untrained folds: ship odds 2
    args = ["ship-served", "--run", run, "--state", state, "--models", models]
    for _ in range(2):  # shipping again changes nothing: the ensemble stays linked to the served model
        done = subprocess.run([cli, *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    served = verified(models, "segmentation")
    shipped, trained = load(served), load(os.path.join(run, "segmentation.pt"))
    assert shipped.preprocess["myocardium_odds"] == 2.0 and shipped.record == trained.record
    assert all(torch.equal(shipped.state_dict[n], t) for n, t in trained.state_dict.items())
    digest = file_sha256(served)
    assert read_record(served)["checkpoint_sha256"] == digest
    assert verified_file(models, "segmentation.onnx")  # the engine exported from the calibrated file
    card = open(os.path.join(models, "segmentation.md")).read()
    assert digest in card and file_sha256(os.path.join(run, "segmentation.pt")) not in card
    assert "## As shipped" in card and "odds 2" in card and card.index("## As shipped") < card.index("## Licence")
    assert (
        read_manifest(models)["served_sha256"] == digest and digest in open(os.path.join(models, "ensemble.md")).read()
    )
    assert verified_file(models, "ensemble.json")
    assert batch_segmentation(models).ensemble  # batch work still runs the ensemble shipped with it

    os.remove(os.path.join(run, "segmentation.md"))  # an unfinished run: nothing ships
    done = subprocess.run([cli, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "no finished release run" in done.stderr


def test_the_recipe_refuses_a_folder_without_all_100_patients(tmp_path):
    acdc = _acdc_of_phantoms(str(tmp_path / "acdc"), distinct=1, patients=3)
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "cmrassist"),
        "train-release",
        "--acdc",
        acdc,
        "--out",
        str(tmp_path / "models"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "holds 3 ACDC patients" in done.stderr and "needs all 100" in done.stderr
    assert not os.path.exists(tmp_path / "models")

"""``cmrassist train-release`` end to end on a tiny budget: an ACDC-layout folder of 100 phantom patients in,
the three models, their cards (held-out figures, command, licence) and checksums the server accepts out."""

import os
import subprocess
import sys

import pytest
import SimpleITK as sitk

from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.release.shipped import MODELS, install_shipped, verified


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

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.acdc import import_acdc, parse_patient_range
from cmrassist_server.io.phantoms import make_phantom


def write_tiny_acdc(root, numbers=(1, 21), with_4d=True):
    """ACDC layout: patientNNN/Info.cfg, _frameXX.nii.gz, _frameXX_gt.nii.gz, optional _4d.nii.gz."""
    for n in numbers:
        p = make_phantom(100 + n, n_frames=6, with_cine=with_4d)
        name = f"patient{n:03d}"
        folder = os.path.join(root, name)
        os.makedirs(folder)
        ed, es = 1, 1 + p.anatomy.es_frame
        with open(os.path.join(folder, "Info.cfg"), "w") as f:
            f.write(
                f"ED: {ed}\nES: {es}\nGroup: {'DCM' if n <= 20 else 'HCM'}\nHeight: 180.0\nNbFrame: 6\nWeight: 80.0\n"
            )
        sitk.WriteImage(p.ed_image, os.path.join(folder, f"{name}_frame{ed:02d}.nii.gz"))
        sitk.WriteImage(p.ed_label, os.path.join(folder, f"{name}_frame{ed:02d}_gt.nii.gz"))
        sitk.WriteImage(p.es_image, os.path.join(folder, f"{name}_frame{es:02d}.nii.gz"))
        sitk.WriteImage(p.es_label, os.path.join(folder, f"{name}_frame{es:02d}_gt.nii.gz"))
        if with_4d and n == numbers[0]:
            sitk.WriteImage(p.cine, os.path.join(folder, f"{name}_4d.nii.gz"))
    return root


def test_import_writes_images_expert_labels_and_info(tmp_path):
    src = write_tiny_acdc(str(tmp_path / "acdc"))
    dst = str(tmp_path / "studies")
    counts = import_acdc(src, dst)
    assert counts == {"patients": 2, "images": 5, "labels": 4}
    ds = json.load(open(os.path.join(dst, "datastore_v2.json")))["objects"]
    assert set(ds) == {"patient001_ed", "patient001_es", "patient001_cine", "patient021_ed", "patient021_es"}
    info = ds["patient021_es"]["image"]["info"]
    assert info["patient"] == "patient021" and info["phase"] == "ES" and info["group"] == "HCM"
    assert info["height_cm"] == 180.0 and info["weight_kg"] == 80.0 and info["ed_frame"] == 1
    assert info["frame"] == info["es_frame"]
    final = ds["patient001_ed"]["labels"]["final"]["info"]
    assert final["expertise"] == "expert" and final["annotator"]
    assert "final" not in ds["patient001_cine"]["labels"]
    lab = sitk.ReadImage(os.path.join(dst, "labels", "final", "patient001_ed.nii.gz"))
    orig = sitk.ReadImage(os.path.join(src, "patient001", "patient001_frame01_gt.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(lab), sitk.GetArrayFromImage(orig))


def test_patient_range_and_label_map(tmp_path):
    src = write_tiny_acdc(str(tmp_path / "acdc"), with_4d=False)
    dst = str(tmp_path / "studies")
    # Pretend the files use LV=1, MYO=2, RV=3: values 1 and 3 must swap.
    counts = import_acdc(src, dst, patients="21", label_map={1: 3, 2: 2, 3: 1})
    assert counts["patients"] == 1
    got = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(dst, "labels", "final", "patient021_ed.nii.gz")))
    ref = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(src, "patient021", "patient021_frame01_gt.nii.gz")))
    assert np.array_equal(got == 3, ref == 1) and np.array_equal(got == 1, ref == 3)
    assert parse_patient_range("1-3,90") == {1, 2, 3, 90}
    with pytest.raises(ValueError):
        parse_patient_range("5-2")


def test_non_acdc_folder_is_refused_with_a_clear_message(tmp_path):
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "scan.nii.gz").write_bytes(b"x")
    with pytest.raises(CMRAssistError, match="no ACDC patient folders"):
        import_acdc(str(tmp_path / "random"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "cmrassist_server.cli", "import-acdc", str(tmp_path / "random"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "no ACDC patient folders" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_label_map_option_validates(tmp_path):
    src = write_tiny_acdc(str(tmp_path / "acdc"), numbers=(1,), with_4d=False)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cmrassist_server.cli",
            "import-acdc",
            src,
            str(tmp_path / "o"),
            "--label-map",
            "LV=1,MYO=2",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "must name LV, MYO and RV" in proc.stderr

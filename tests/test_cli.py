"""The ``cmrassist`` console script: phantoms, evaluate, prepare-demo; and the Python 3.9 floor of CMRAssist/."""

import csv
import json
import os
import subprocess
import sys

import pytest
import SimpleITK as sitk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [os.path.join(os.path.dirname(sys.executable), "cmrassist")]  # the installed console script


def run(*args, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, **kw)


def test_phantoms_command_writes_a_studies_folder(tmp_path):
    out = tmp_path / "st"
    proc = run("phantoms", "--out", str(out), "--n", "2", "--seed", "3", "--labelled-fraction", "0.5")
    assert proc.returncode == 0, proc.stderr
    ds = json.load(open(out / "datastore_v2.json"))["objects"]
    assert set(ds) == {"phantom003_ed", "phantom003_es", "phantom004_ed", "phantom004_es"}
    assert "final" in ds["phantom003_ed"]["labels"] and "final" not in ds["phantom004_ed"]["labels"]


def test_evaluate_prints_a_table_and_writes_csv(tmp_path):
    from cmrassist_server.io.phantoms import make_phantom

    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir()
    pred.mkdir()
    p = make_phantom(4, with_cine=False)
    for phase, lab in (("ed", p.ed_label), ("es", p.es_label)):
        sitk.WriteImage(lab, str(ref / f"s1_{phase}.nii.gz"))
        arr = sitk.GetArrayFromImage(lab)
        arr[arr == 2] = 0 if phase == "ed" else 2  # prediction misses the ED myocardium
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(lab)
        sitk.WriteImage(out, str(pred / f"s1_{phase}.nii.gz"))
    csv_path = tmp_path / "eval.csv"
    proc = run("evaluate", "--pred", str(pred), "--ref", str(ref), "--csv", str(csv_path))
    assert proc.returncode == 0, proc.stderr
    assert "LV" in proc.stdout and "lv_ef_pct" in proc.stdout and "lv_mass_g" in proc.stdout
    rows = list(csv.DictReader(open(csv_path)))
    by = {(r["volume"], r["class"]): float(r["dice"]) for r in rows}
    assert by[("s1_ed", "LV")] == 1.0 and by[("s1_ed", "MYO")] == 0.0 and by[("s1_es", "MYO")] == 1.0
    bad = run("evaluate", "--pred", str(tmp_path / "nope"), "--ref", str(ref))
    assert bad.returncode == 2 and "is not a folder" in bad.stderr


@pytest.mark.slow
def test_prepare_demo_writes_phantoms_and_a_bootstrap_model(tmp_path):
    studies, model = tmp_path / "demo", tmp_path / "model"
    proc = run(
        "prepare-demo", "--studies", str(studies), "--model-dir", str(model), "--phantoms", "3", "--minutes", "0.3"
    )
    assert proc.returncode == 0, proc.stderr
    assert (model / "segmentation.pt").is_file()
    assert "demo model training" in proc.stderr and "bootstrap training" in proc.stdout  # no shipped model in tests
    ds = json.load(open(studies / "datastore_v2.json"))["objects"]
    assert any("final" in o["labels"] for o in ds.values()) and any("final" not in o["labels"] for o in ds.values())
    again = run("prepare-demo", "--studies", str(studies), "--model-dir", str(model))
    assert again.returncode == 0 and "model present" in again.stdout


def test_slicer_side_code_runs_on_python_39():
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "vermin"),
            "--no-tips",
            "--violations",
            "-t=3.9-",
            "--eval-annotations",
            os.path.join(ROOT, "CMRAssist"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_slicer_side_code_never_imports_torch_and_only_one_lib_file_imports_slicer():
    import re

    lib = os.path.join(ROOT, "CMRAssist", "CMRAssistLib")
    importing_slicer = set()
    for name in os.listdir(lib):
        if name.endswith(".py"):
            text = open(os.path.join(lib, name)).read()
            assert not re.search(r"^\s*(import|from) torch\b", text, re.M), name
            if re.search(r"^\s*(import|from) (slicer|sitkUtils|ctk|qt)\b", text, re.M):
                importing_slicer.add(name)
    # qt_compat picks PythonQt's qt inside Slicer; everything else Slicer-bound lives in slicer_scene.py.
    assert importing_slicer == {"slicer_scene.py", "qt_compat.py"}


def test_module_cmakelists_lists_every_lib_file_and_resource():
    import re

    module = os.path.join(ROOT, "CMRAssist")
    text = open(os.path.join(module, "CMakeLists.txt")).read().replace("${MODULE_NAME}", "CMRAssist")
    listed = set()
    for block in re.findall(r"set\(MODULE_PYTHON_(?:SCRIPTS|RESOURCES)\s+(.*?)\)", text, re.S):
        listed |= set(block.split())
    on_disk = {
        os.path.relpath(os.path.join(d, f), module)
        for d, _, files in os.walk(module)
        for f in files
        if not f.endswith((".pyc", "CMakeLists.txt")) and "__pycache__" not in d
    }
    assert on_disk == listed

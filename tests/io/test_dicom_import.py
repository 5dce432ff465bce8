"""``cmrassist import-dicom``: short-axis cines written as scanners export them (three layouts, shuffled names,
nested folders, localiser and long-axis series beside them) come back as the same 4D array and geometry; every
broken set is refused with one readable line, exit code 2 and nothing written."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from cmrassist_server.cli import main
from cmrassist_server.io.dicom.importer import import_dicom, lv_volume_phases
from cmrassist_server.io.dicom.writer import LAYOUTS, study_header, write_cine, write_other_series
from cmrassist_server.io.phantoms import make_phantom

CLI = [os.path.join(os.path.dirname(sys.executable), "cmrassist")]
ACDC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "acdc", "training")


def rotated(image: sitk.Image, degrees: float) -> sitk.Image:
    """The same voxels in an oblique (right-handed) orientation and elsewhere in space, as a real short axis lies."""
    a, b = np.radians(degrees), np.radians(degrees / 2)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    d = np.eye(4)
    d[:3, :3] = rz @ rx
    out = sitk.Image(image)
    out.SetDirection(tuple(d.ravel()))
    out.SetOrigin((-120.5, 33.25, 87.125, 0.0))
    return out


def write_set(cine: sitk.Image, folder: str, layout: str, seed: int, **header) -> str:
    rng = np.random.default_rng(seed)
    h = study_header(rng, patient_id=header.pop("patient_id", f"P{seed}"), **header)
    write_cine(cine, folder, layout=layout, header=h, rng=rng)
    write_other_series(folder, header=h, like=cine, rng=rng)
    with open(os.path.join(folder, "README.txt"), "w") as f:
        f.write("not DICOM")  # exports often carry such files
    return folder


@pytest.fixture(scope="module")
def phantom():
    p = make_phantom(2, n_frames=10)  # int16 storage: exact round trip
    assert p.cine.GetPixelID() == sitk.sitkInt16
    return p


def stored(dst: str):
    return json.load(open(os.path.join(dst, "datastore_v2.json")))["objects"]


def assert_same_cine(image: sitk.Image, expected: sitk.Image, atol: float = 0.0) -> None:
    assert image.GetSize() == expected.GetSize()
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(expected), rtol=0, atol=atol)
    # NIfTI keeps its geometry in float32: equal to within that precision.
    np.testing.assert_allclose(image.GetSpacing(), expected.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), expected.GetOrigin(), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(image.GetDirection(), expected.GetDirection(), atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_comes_back_as_the_same_cine(phantom, layout, tmp_path):
    cine = rotated(phantom.cine, 25.0)
    src = write_set(cine, str(tmp_path / "src"), layout, seed=5, height_cm=180, weight_kg=81)
    result = import_dicom(src, str(tmp_path / "dst"))
    assert len(result["images"]) == 2 and result["cines"] == 1
    cine_id, ed_id = result["images"]
    assert cine_id.endswith("_cine") and ed_id == cine_id.replace("_cine", "_ed")
    assert_same_cine(sitk.ReadImage(str(tmp_path / "dst" / f"{cine_id}.nii.gz")), cine)
    ed = sitk.ReadImage(str(tmp_path / "dst" / f"{ed_id}.nii.gz"))
    assert sitk.GetArrayFromImage(ed).tolist() == sitk.GetArrayFromImage(cine)[0].tolist()
    objects = stored(str(tmp_path / "dst"))
    info = objects[cine_id]["image"]["info"]
    assert info["patient"] == "P5" and info["n_frames"] == 10 and info["ed_frame"] == 1 and "es_frame" not in info
    assert len(info["trigger_times_ms"]) == 10 and info["trigger_times_ms"] == sorted(info["trigger_times_ms"])
    assert info["heart_rate_bpm"] > 0 and info["height_cm"] == 180.0 and info["weight_kg"] == 81.0
    assert info["study_instance_uid"] and info["series_instance_uids"]
    assert objects[ed_id]["image"]["info"]["source_image"] == cine_id
    assert sorted(result["skipped"]) == [
        "series 1 'localizer': localiser",
        "series 2 'cine_4ch': single-slice cine (long-axis view)",
    ]
    assert result["not_dicom"] == ["README.txt"]


def test_float_images_come_back_within_the_stored_precision(tmp_path):
    p = make_phantom(1, n_frames=3)  # float storage: DICOM keeps integers and a rescale slope
    array = sitk.GetArrayFromImage(p.cine)
    src = write_set(p.cine, str(tmp_path / "src"), "single_series", seed=1)
    cine_id = import_dicom(src, str(tmp_path / "dst"))["images"][0]
    slope = (array.max() - array.min()) / 60000.0
    assert_same_cine(sitk.ReadImage(str(tmp_path / "dst" / f"{cine_id}.nii.gz")), p.cine, atol=slope / 2 + 1e-4)


@pytest.mark.skipif(not os.path.isdir(ACDC), reason="ACDC is not at ../shared/acdc")
def test_an_acdc_cine_comes_back_identical(tmp_path):
    cine = sitk.ReadImage(os.path.join(ACDC, "patient090", "patient090_4d.nii.gz"))
    src = write_set(cine, str(tmp_path / "src"), "series_per_slice", seed=90, patient_id="patient090")
    cine_id = import_dicom(src, str(tmp_path / "dst"))["images"][0]
    assert_same_cine(sitk.ReadImage(str(tmp_path / "dst" / f"{cine_id}.nii.gz")), cine, atol=1e-6)


def test_a_second_import_skips_what_is_there_and_adds_the_new(phantom, tmp_path):
    first = write_set(phantom.cine, str(tmp_path / "a"), "enhanced", seed=7)
    import_dicom(first, str(tmp_path / "dst"))
    shutil.copytree(first, str(tmp_path / "both" / "a"))
    write_set(make_phantom(3, n_frames=4).cine, str(tmp_path / "both" / "b"), "single_series", seed=8)
    result = import_dicom(str(tmp_path / "both"), str(tmp_path / "dst"))
    assert len(result["already_imported"]) == 1 and result["cines"] == 1
    assert len(stored(str(tmp_path / "dst"))) == 4


def test_ed_and_es_from_lv_volumes_of_a_segmentation():
    p = make_phantom(4, n_frames=8, with_cine=False)
    from cmrassist_server.io.phantoms import render_frame

    rng = np.random.default_rng(0)
    labels = np.stack([render_frame(p.anatomy, t, rng)[1] for t in range(8)])
    ed, es, volumes = lv_volume_phases(labels, (1.0, 1.0, 1.0))
    assert ed == 0 and es == p.anatomy.es_frame and max(volumes) == volumes[0]


def files_of(src: str):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.startswith("IM"))


def cine_files(src: str):
    out = []
    for path in files_of(src):
        ds = pydicom.dcmread(path)
        if str(ds.SeriesDescription).startswith("cine_sax"):
            out.append((path, ds))
    return out


def break_missing_phase(src):
    path, _ = cine_files(src)[5]
    os.remove(path)


def break_duplicated_phase(src):
    path, ds = cine_files(src)[5]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(path + "copy")


def break_orientation(src):
    path, ds = cine_files(src)[5]
    a = np.radians(3.0)
    ds.ImageOrientationPatient = [np.cos(a), np.sin(a), 0.0, -np.sin(a), np.cos(a), 0.0]
    ds.save_as(path)


def break_spacing(src):
    files = cine_files(src)
    z0 = min(float(ds.ImagePositionPatient[2]) for _, ds in files)
    for path, ds in files:  # every phase of the first slice moves 3 mm towards the second
        if abs(float(ds.ImagePositionPatient[2]) - z0) < 1e-3:
            ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], z0 + 3.0]
            ds.save_as(path)


@pytest.mark.parametrize(
    "breaks, message",
    [
        (break_missing_phase, "missing phase(s)"),
        (break_duplicated_phase, "duplicated phase"),
        (break_orientation, "slice orientation differs by 3.0 degrees"),
        (break_spacing, "slice spacing is not uniform"),
    ],
)
def test_broken_sets_are_refused_naming_the_series_and_nothing_is_written(phantom, tmp_path, capsys, breaks, message):
    src = write_set(phantom.cine, str(tmp_path / "src"), "series_per_slice", seed=9)
    breaks(src)
    dst = tmp_path / "dst"
    assert main(["import-dicom", src, str(dst), "--no-model"]) == 2  # the console script's own entry point
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "series 1" in lines[0] and "cine_sax_" in lines[0], lines
    assert not dst.exists()


def test_a_folder_without_a_cine_is_refused(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    write_other_series(
        str(src), header=study_header(rng, patient_id="X"), like=make_phantom(1, n_frames=2).cine, rng=rng
    )
    proc = subprocess.run(
        [*CLI, "import-dicom", str(src), str(tmp_path / "dst"), "--no-model"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "holds no short-axis cine" in proc.stderr and "localiser" in proc.stderr
    assert not (tmp_path / "dst").exists()

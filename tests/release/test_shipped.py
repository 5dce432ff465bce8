"""The shipped models (``models/``): a server on an empty model folder serves them at once over real HTTP, their
checksums are checked when they are installed, and a tampered file is refused with a clear error."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from cmrassist_server.core.checkpoints import read_record
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.model_versions import list_versions
from cmrassist_server.launcher import RunningServer
from cmrassist_server.release.shipped import MODELS, install_shipped, shipped_folder, verified
from CMRAssistLib.client import CMRAssistClient
from CMRAssistLib.transport import ServerError

SHIPPED = shipped_folder()


def _dice(a: np.ndarray, b: np.ndarray, c: int) -> float:
    return 2 * float(((a == c) & (b == c)).sum()) / max(1, int((a == c).sum() + (b == c).sum()))


def test_the_repository_ships_every_model_with_a_card_and_a_matching_checksum():
    for name in MODELS:
        assert verified(SHIPPED, name) == os.path.join(SHIPPED, f"{name}.pt")
        assert os.path.getsize(os.path.join(SHIPPED, f"{name}.pt")) < 25 * 1024 * 1024
        with open(os.path.join(SHIPPED, f"{name}.md")) as f:
            card = f.read()
        assert "cmrassist train-release" in card and "ACDC" in card and "Research use only" in card


def _tampered_copy(tmp_path) -> str:
    folder = str(tmp_path / "models")
    shutil.copytree(SHIPPED, folder)
    with open(os.path.join(folder, "segmentation.pt"), "r+b") as f:  # one byte changed in the middle
        f.seek(os.path.getsize(f.name) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    return folder


def test_a_tampered_or_unlisted_model_is_refused_and_not_installed(tmp_path):
    folder = _tampered_copy(tmp_path)
    with pytest.raises(CMRAssistError, match="does not match its checksum"):
        verified(folder, "segmentation")
    outcome = install_shipped(str(tmp_path / "model_dir"), folder)
    assert outcome["segmentation"].startswith("refused") and outcome["qc"] == "installed"
    assert not os.path.exists(tmp_path / "model_dir" / "segmentation.pt")
    with open(os.path.join(folder, "SHA256SUMS")) as f:
        kept = [line for line in f if "slice_position.pt" not in line]
    with open(os.path.join(folder, "SHA256SUMS"), "w") as f:
        f.writelines(kept)
    with pytest.raises(CMRAssistError, match="no checksum"):
        verified(folder, "slice_position")


def test_a_trained_model_is_never_replaced_by_the_shipped_one(tmp_path):
    model_dir = tmp_path / "model_dir"
    model_dir.mkdir()
    (model_dir / "segmentation.pt").write_bytes(b"a site's own model")
    outcome = install_shipped(str(model_dir), SHIPPED)
    assert outcome["segmentation"] == "present" and outcome["slice_position"] == "installed"
    assert (model_dir / "segmentation.pt").read_bytes() == b"a site's own model"


@pytest.fixture(scope="module")
def shipped_server(phantom_studies, tmp_path_factory):
    root = tmp_path_factory.mktemp("shipped_server")
    studies = str(root / "studies")
    shutil.copytree(phantom_studies + "_pristine", studies, ignore=shutil.ignore_patterns(".cmrassist"))
    srv = RunningServer(studies, str(root / "model"), str(root / "server.log"), ["--conf", "shipped_dir", SHIPPED])
    yield srv
    srv.stop()


def _oblique_copy(studies: str, folder: str) -> str:
    """A phantom frame written as a scanner writes a short-axis stack: oblique axes, origin far from zero."""
    image = sitk.ReadImage(os.path.join(studies, "phantom011_ed.nii.gz"))
    angle = np.deg2rad(35)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    image.SetDirection(tuple(rotation.ravel()))
    image.SetOrigin((-120.5, 87.25, 40.0))
    path = os.path.join(folder, "oblique_ed.nii.gz")
    sitk.WriteImage(image, path)
    return path


def test_an_empty_model_folder_serves_the_shipped_models_at_once(shipped_server, tmp_path):
    client = CMRAssistClient(shipped_server.url, timeout=60)
    info = client.info()
    for name in ("segmentation", "qc", "slice_position"):
        assert info["models"][name]["trained"] is True and info["models"][name]["version"] == "shipped"
    assert info["shipped_models"] == {**dict.fromkeys(MODELS, "installed"), "ensemble": "installed"}
    assert client.model_versions("segmentation")[0]["version"] == "shipped"
    # One click on a phantom: the shipped model finds the LV cavity and the RV where the phantom has them.
    reference = sitk.GetArrayFromImage(
        sitk.ReadImage(os.path.join(shipped_server.studies, "labels", "final", "phantom011_ed.nii.gz"))
    )
    label = sitk.GetArrayFromImage(sitk.ReadImage(client.infer("phantom011_ed", str(tmp_path))))
    assert _dice(label, reference, 3) > 0.8 and _dice(label, reference, 1) > 0.6
    report = client.quality("phantom011_ed", label="final")
    assert report["learned"] and report["qc_model"]["kind"] == "qc"
    assert all(0 <= s["classes"]["lv_cavity"]["dice"] <= 1 for s in report["slices"])


def test_a_scanner_geometry_study_is_segmented_in_its_own_geometry(shipped_server, tmp_path):
    client = CMRAssistClient(shipped_server.url, timeout=60)
    path = _oblique_copy(shipped_server.studies, str(tmp_path))
    image_id = client.upload_image(path, "oblique_ed")
    label_image = sitk.ReadImage(client.infer(image_id, str(tmp_path)))
    image = sitk.ReadImage(path)
    assert np.allclose(label_image.GetDirection(), image.GetDirection(), atol=1e-5)
    assert np.allclose(label_image.GetOrigin(), image.GetOrigin(), atol=1e-3)
    reference = sitk.GetArrayFromImage(
        sitk.ReadImage(os.path.join(shipped_server.studies, "labels", "final", "phantom011_ed.nii.gz"))
    )
    assert _dice(sitk.GetArrayFromImage(label_image), reference, 3) > 0.8


def test_a_tampered_shipped_model_is_refused_with_a_clear_error(phantom_studies, tmp_path):
    studies = str(tmp_path / "studies")
    shutil.copytree(phantom_studies + "_pristine", studies, ignore=shutil.ignore_patterns(".cmrassist"))
    folder = _tampered_copy(tmp_path)
    srv = RunningServer(
        studies, str(tmp_path / "model"), str(tmp_path / "server.log"), ["--conf", "shipped_dir", folder]
    )
    try:
        client = CMRAssistClient(srv.url, timeout=60)
        info = client.info()
        assert "does not match its checksum" in info["shipped_models"]["segmentation"]
        assert info["models"]["segmentation"]["trained"] is False and info["models"]["qc"]["version"] == "shipped"
        with pytest.raises(ServerError) as e:
            client.infer("phantom011_ed", str(tmp_path))
        assert e.value.status == 409
        with open(srv.log_path) as f:
            assert "does not match its checksum" in f.read()
    finally:
        srv.stop()


@pytest.mark.slow
def test_the_demo_fine_tunes_the_shipped_model_on_its_phantoms(tmp_path):
    studies, model_dir = tmp_path / "demo", tmp_path / "model"
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "cmrassist"),
        "prepare-demo",
        "--studies",
        str(studies),
        "--model-dir",
        str(model_dir),
        "--phantoms",
        "3",
        "--finetune-minutes",
        "0.2",
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "CMRASSIST_SHIPPED_DIR": SHIPPED}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fine-tuning the shipped segmentation model" in done.stdout and "demo model published: True" in done.stdout
    record = read_record(str(model_dir / "segmentation.pt"))
    assert record["options"]["from_scratch"] is False
    versions = [v["version"] for v in list_versions(str(model_dir / "segmentation.pt"))]
    assert versions[0] == "shipped" and len(versions) == 2  # the shipped model kept, the demo's published after it
    assert all((model_dir / f"{name}.pt").is_file() for name in MODELS)

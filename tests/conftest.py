"""Shared fixtures: small phantom studies and a real MONAI Label server on a free loopback port."""

import os

import pytest
import SimpleITK as sitk
from training_wait import wait_training

from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.launcher import RunningServer

# The tests' servers start untrained (what most of them check); tests/release starts servers with the shipped models.
os.environ.setdefault("CMRASSIST_SHIPPED_DIR", "none")


@pytest.fixture(scope="session")
def phantom_studies(tmp_path_factory):
    """3 labelled phantom subjects (ED/ES) and one unlabelled subject with its cine."""
    import shutil

    from cmrassist_server.io.studies import phantom_studies as write

    folder = str(tmp_path_factory.mktemp("studies"))
    write(folder, 3, seed=11)
    write(folder, 1, seed=40, labelled_fraction=0.0, with_cine=True)
    # Untouched copy for servers of their own: tests on the session server add studies and labels to ``folder``.
    shutil.copytree(folder, folder + "_pristine")
    return folder


@pytest.fixture(scope="session")
def server(phantom_studies, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("model"))
    srv = RunningServer(phantom_studies, model_dir, str(tmp_path_factory.mktemp("logs") / "server.log"))
    yield srv
    srv.stop()


@pytest.fixture()
def fresh_server(phantom_studies, tmp_path):
    """A server of its own: a copy of the phantom studies and an empty model folder (no model trained yet)."""
    import shutil

    studies = str(tmp_path / "own_studies")
    # Without the session server's own state (QC reports, ranking store): this server starts from the studies alone.
    shutil.copytree(phantom_studies + "_pristine", studies, ignore=shutil.ignore_patterns(".cmrassist"))
    srv = RunningServer(studies, str(tmp_path / "own_model"), str(tmp_path / "own_server.log"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def trained_server(server):
    """The server after a short real training run through POST /train/segmentation."""
    from CMRAssistLib.client import CMRAssistClient

    client = CMRAssistClient(server.url)
    client.train_start("segmentation", max_epochs=3, max_minutes=1.0, seed=1)
    status = wait_training(client)
    assert status.state == "DONE", f"training ended as {status}"
    return server


@pytest.fixture(scope="session")
def qc_server(trained_server, phantom_studies, tmp_path_factory):
    """A server of its own with the trained segmentation model, after a short real QC training (POST /train/qc).

    Its own, so that its QC training is not what ``GET /train/`` of the shared server reports.
    """
    import shutil

    from CMRAssistLib.client import CMRAssistClient

    wait_training(CMRAssistClient(trained_server.url))
    root = tmp_path_factory.mktemp("qc_server")
    studies, model_dir = str(root / "studies"), str(root / "model")
    shutil.copytree(phantom_studies + "_pristine", studies, ignore=shutil.ignore_patterns(".cmrassist"))
    shutil.copytree(trained_server.model_dir, model_dir)
    srv = RunningServer(studies, model_dir, str(root / "server.log"))
    client = CMRAssistClient(srv.url)
    client.train_start("qc", max_epochs=2, max_minutes=0.5, snapshots=0, corruptions_per_case=3, seed=3)
    status = wait_training(client)
    assert status.state == "DONE", f"QC training ended as {status}"
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def phantom_frame_items(tmp_path_factory):
    """Labelled ED and ES frames of three phantoms as training items (``image``, ``label``, ``subject``, ``group``)."""
    folder = tmp_path_factory.mktemp("frames")
    out = []
    for seed in (1, 2, 3):
        p = make_phantom(seed, with_cine=False)
        for phase, img, lab in (("ed", p.ed_image, p.ed_label), ("es", p.es_image, p.es_label)):
            ip, lp = str(folder / f"{p.name}_{phase}.nii.gz"), str(folder / f"{p.name}_{phase}_gt.nii.gz")
            sitk.WriteImage(img, ip)
            sitk.WriteImage(lab, lp)
            out.append({"image": ip, "label": lp, "subject": p.name, "group": "PHANTOM"})
    return out

"""Fixtures of the Slicer-side tests: a Qt-less Slicer application (slicer-core) and a phantom cine on disk."""

import pytest
import SimpleITK as sitk
from cine_phantom import write_cine
from scene_helpers import label_of, study_of
from slicer_app import CoreSlicer

from CMRAssistLib.frames import extract_frame


@pytest.fixture()
def core():
    """A fresh scene with Slicer's logics (one per test, as a fresh Slicer would be)."""
    app = CoreSlicer()
    yield app
    app.close()


@pytest.fixture(scope="session")
def cine_files(tmp_path_factory):
    """A 6-frame oblique cine and its label, as the server stores them."""
    return write_cine(str(tmp_path_factory.mktemp("studies")))


@pytest.fixture()
def cine_study(cine_files, tmp_path):
    return study_of(cine_files[0], "cine", str(tmp_path / "frames"), ed_frame=1, es_frame=4)


@pytest.fixture()
def frame_study(cine_files, tmp_path):
    """Frame 4 (ES) of the cine as a 3D study with its label."""
    for path, name in zip(cine_files, ("es.nii.gz", "es_label.nii.gz")):
        sitk.WriteImage(extract_frame(sitk.ReadImage(path), 3), str(tmp_path / name))
    study = study_of(str(tmp_path / "es.nii.gz"), "cine_frame04", str(tmp_path / "frames"), phase="ES", frame=4)
    return study, label_of(str(tmp_path / "es_label.nii.gz"), str(tmp_path / "label_frames"))

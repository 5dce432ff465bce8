"""The panel model without Qt: cine frames, frame choices, ids, settings checks."""

import numpy as np
import pytest
import SimpleITK as sitk

from CMRAssistLib.annotation import Study, image_id_for
from CMRAssistLib.frames import count_frames, write_frame
from CMRAssistLib.settings import UserSettings


def test_frames_of_a_phantom_cine_match_its_ed_and_es_images(tmp_path):
    from cmrassist_server.phantoms import make_phantom

    p = make_phantom(5, n_frames=6)
    cine = str(tmp_path / "cine.nii.gz")
    sitk.WriteImage(p.cine, cine)
    assert count_frames(cine) == 6
    for number, image in ((p.info["ed_frame"], p.ed_image), (p.info["es_frame"], p.es_image)):
        out = write_frame(cine, number - 1, str(tmp_path / f"f{number}.nii.gz"))  # info counts frames from 1
        frame = sitk.ReadImage(out)
        assert frame.GetDimension() == 3 and frame.GetSize() == image.GetSize()
        assert np.allclose(frame.GetSpacing(), image.GetSpacing()) and np.allclose(frame.GetOrigin(), image.GetOrigin())
        assert np.array_equal(sitk.GetArrayFromImage(frame), sitk.GetArrayFromImage(image))
    assert count_frames(str(tmp_path / "f1.nii.gz")) == 1
    with pytest.raises(ValueError):
        write_frame(cine, 6, str(tmp_path / "x.nii.gz"))


def test_frame_choices_put_ed_and_es_first_and_the_whole_cine_last():
    cine = Study("p_cine", "x", {"ed_frame": 1, "es_frame": 4}, n_frames=5)
    choices = cine.frame_choices()
    assert choices[0] == ("ED (frame 1)", 1) and choices[1] == ("ES (frame 4)", 4)
    assert [n for _, n in choices[2:-1]] == [2, 3, 5] and choices[-1][1] is None
    assert Study("p_ed", "x", {"phase": "ED"}).frame_choices() == [("ED frame", None)]


def test_ids_from_node_names_and_settings_problems():
    assert image_id_for("/a/Patient 7 (SAX).nii.gz") == "Patient_7_SAX"
    assert image_id_for("../..") == "study"
    assert UserSettings("http://x", "", "expert").problems().startswith("Type your name")
    assert "expert or a non-expert" in UserSettings("http://x", "Ada", "guru").problems()
    assert UserSettings("http://x", "Ada", "non-expert").problems() is None


def test_train_status_reads_segmentation_and_qc_progress_lines():
    import json

    from CMRAssistLib.client import PROGRESS_PREFIX, parse_train_status
    from CMRAssistLib.train_panel import describe_training

    seg = {"event": "epoch", "epoch": 3, "max_epochs": 10, "percent": 30.0, "val_dice": {"LV": 0.9, "MYO": 0.8, "RV": 0.7},
           "best_val_dice": {"mean": 0.8}}
    status = parse_train_status({"status": "RUNNING", "details": ["loading", PROGRESS_PREFIX + json.dumps(seg)]})
    assert status.running and status.epoch == 3 and status.val_mae is None
    assert "validation Dice LV 0.900, MYO 0.800, RV 0.700" in describe_training(status)
    qc = {"event": "epoch", "epoch": 2, "max_epochs": 30, "percent": 12.5, "val": {"mae": 0.0812}, "best_val": {"mae": 0.0812}}
    status = parse_train_status({"status": "RUNNING", "details": [PROGRESS_PREFIX + json.dumps(qc)]})
    assert status.percent == 12.5 and status.val_mae == 0.0812 and not status.val_dice
    assert "QC validation slice-Dice error 0.081" in describe_training(status)


"""The panel model without Qt: cine frames, frame choices, ids, settings checks."""

import numpy as np
import pytest
import SimpleITK as sitk

from CMRAssistLib.annotation import Study, image_id_for
from CMRAssistLib.frames import count_frames, split_frames, write_frame
from CMRAssistLib.settings import UserSettings


def test_frames_of_a_cine_match_its_frame_images_and_split_into_uncompressed_copies(tmp_path):
    from cine_phantom import phantom_frame, write_cine

    cine, _ = write_cine(str(tmp_path), frames=6)
    assert count_frames(cine) == 6
    reference = sitk.ReadImage(cine)
    for number in (1, 4):  # ED and ES, counted from 1 as in Info.cfg
        out = write_frame(cine, number - 1, str(tmp_path / f"f{number}.nii.gz"))
        frame = sitk.ReadImage(out)
        assert frame.GetDimension() == 3 and frame.GetSize() == reference.GetSize()[:3]
        assert np.allclose(frame.GetSpacing(), reference.GetSpacing()[:3])
        assert np.allclose(frame.GetOrigin(), reference.GetOrigin()[:3])
        assert np.array_equal(sitk.GetArrayFromImage(frame), phantom_frame(number - 1, 6)[0])
    assert count_frames(str(tmp_path / "f1.nii.gz")) == 1
    with pytest.raises(ValueError):
        write_frame(cine, 6, str(tmp_path / "x.nii.gz"))
    copies = split_frames(cine, str(tmp_path / "copies"))
    assert len(copies) == 6 and all(p.endswith(".nrrd") for p in copies)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(copies[3])), phantom_frame(3, 6)[0])


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
    from CMRAssistCore.progress import progress_line
    from CMRAssistLib.client import parse_train_status
    from CMRAssistLib.train_panel import describe_training

    seg = {
        "epoch": 3,
        "max_epochs": 10,
        "percent": 30.0,
        "model": "segmentation",
        "metric": "mean",
        "val": {"LV": 0.9, "MYO": 0.8, "RV": 0.7, "mean": 0.8},
        "score": 0.8,
        "best_val": {"mean": 0.8},
        "best_score": 0.8,
    }
    status = parse_train_status({"status": "RUNNING", "details": ["loading", progress_line("epoch", **seg)]})
    assert status.running and status.epoch == 3 and status.model == "segmentation"
    assert "validation LV 0.900, MYO 0.800, RV 0.700" in describe_training(status)
    assert "best mean validation Dice 0.800" in describe_training(status)
    qc = {
        "epoch": 2,
        "max_epochs": 30,
        "percent": 12.5,
        "model": "qc",
        "metric": "mae",
        "val": {"mae": 0.0812},
        "score": 0.0812,
        "best_val": {"mae": 0.0812},
        "best_score": 0.0812,
    }
    status = parse_train_status({"status": "RUNNING", "details": [progress_line("epoch", **qc)]})
    assert status.percent == 12.5 and status.score == 0.0812 and "LV" not in status.val
    assert "best validation slice-Dice error 0.081" in describe_training(status)
    position = {
        "epoch": 5,
        "max_epochs": 40,
        "percent": 12.5,
        "model": "slice_position",
        "metric": "macro_f1",
        "val": {"accuracy": 0.925, "macro_f1": 0.8, "position_mae": 0.1},
        "score": 0.8,
        "best_score": 0.8,
    }
    status = parse_train_status({"status": "RUNNING", "details": [progress_line("epoch", **position)]})
    assert status.val["accuracy"] == 0.925 and "accuracy 0.925" in describe_training(status)
    assert "best validation macro F1 0.800" in describe_training(status)


def test_review_rows_put_slices_outside_the_lv_last():
    from CMRAssistLib.review import position_text, slice_rows

    def cell(dice):
        return {name: {"dice": dice, "flagged": dice < 0.7} for name in ("rv_cavity", "lv_myocardium", "lv_cavity")}

    report = {
        "slices": [
            {"slice": k, "center_lps": [0, 0, k], "classes": cell(d), "reasons": [], "rules": []}
            for k, d in enumerate([0.2, 0.9, 0.5, 0.95, 0.3])
        ]
    }
    assert [r.slice for r in slice_rows(report)] == [0, 4, 2, 1, 3]
    positions = {
        "slices": [
            {"slice": k, "position": p} for k, p in enumerate(["too_basal", "in_lv", "in_lv", "in_lv", "too_apical"])
        ],
        "in_lv": {"first": 1, "last": 3, "count": 3},
    }
    rows = slice_rows(report, positions)
    assert [r.slice for r in rows] == [2, 1, 3, 0, 4] and [r.outside_lv for r in rows] == [False] * 3 + [True] * 2
    assert position_text(positions) == "Slice position: slices 1-3 of 0-4 in the LV; 2 outside it."
    assert position_text(None) == ""

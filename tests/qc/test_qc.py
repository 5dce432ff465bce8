"""QC arithmetic, rule checks, corruptions, the QC training set and the checker, on phantoms (no server)."""

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from cmrassist_server.qc.check import QualityChecker, parse_thresholds
from cmrassist_server.qc.corruptions import CORRUPTIONS, corrupt
from cmrassist_server.qc.metrics import (
    corrected_areas,
    dice_3d,
    flag_slices,
    rebuild_dice_3d,
    slice_counts,
    slice_dice_mvsf,
)
from cmrassist_server.qc.rules import check_rules

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def phantom():
    from cmrassist_server.io.phantoms import make_phantom

    p = make_phantom(5)
    return p.ed_image, sitk.GetArrayFromImage(p.ed_label).astype(np.uint8)


def _rules(label):
    return {(f.rule, f.slice, f.cls) for f in check_rules(label)}


def test_rebuilt_3d_dice_equals_the_true_3d_dice_when_fed_true_slice_values(phantom):
    _, ref = phantom
    rng = np.random.default_rng(0)
    for name in ("erode", "dilate", "shift", "boundary_noise", "partial_delete", "extra_slices"):
        seg = CORRUPTIONS[name](ref, rng)
        counts = slice_counts(seg)
        dice, mvsf = slice_dice_mvsf(ref, seg)
        # The formula is exact wherever the checked segmentation has the class on every slice the reference has it
        # and MVSF stays under the 1.99 guard against blowing up predicted values.
        exact = [
            c
            for c in (1, 2, 3)
            if not np.any((counts[:, c] == 0) & (slice_counts(ref)[:, c] > 0)) and mvsf[:, c].max() < 1.99
        ]
        rebuilt = rebuild_dice_3d(counts, dice, mvsf)
        true = dice_3d(ref, seg)
        assert exact, name
        np.testing.assert_allclose(rebuilt[exact], true[exact], atol=1e-9, err_msg=name)
        assert true[1:].min() < 1.0, f"{name} changed nothing"


def test_rebuild_estimates_a_missing_slice_from_its_neighbours(phantom):
    _, ref = phantom
    seg = ref.copy()
    lv_slices = np.flatnonzero((ref == 3).any((1, 2)))
    mid = lv_slices[len(lv_slices) // 2]
    seg[mid][seg[mid] == 3] = 0
    dice, mvsf = slice_dice_mvsf(ref, seg)
    rebuilt = rebuild_dice_3d(slice_counts(seg), dice, mvsf)
    true = dice_3d(ref, seg)
    assert true[3] < 0.97
    assert abs(rebuilt[3] - true[3]) < 0.02  # without the neighbour estimate the rebuild says 1.0


def test_an_empty_segmentation_rebuilds_to_zero_where_the_reference_has_the_class(phantom):
    _, ref = phantom
    empty = np.zeros_like(ref)
    dice, mvsf = slice_dice_mvsf(ref, empty)
    np.testing.assert_array_equal(rebuild_dice_3d(slice_counts(empty), dice, mvsf)[1:], [0.0, 0.0, 0.0])
    nothing = np.zeros_like(ref)
    dice, mvsf = slice_dice_mvsf(nothing, empty)
    np.testing.assert_array_equal(rebuild_dice_3d(slice_counts(empty), dice, mvsf), [1.0, 1.0, 1.0, 1.0])


def test_correction_restores_the_volume_of_a_study_whose_mid_slice_was_replaced_by_a_bad_one(phantom):
    _, ref = phantom
    areas = slice_counts(ref)[:, 3]
    lv_slices = np.flatnonzero(areas > 0)
    mid = lv_slices[len(lv_slices) // 2]
    bad = ref.copy()
    bad[mid] = ref[lv_slices[-1]]  # the apical slice's segmentation pasted on the mid slice
    bad_areas = slice_counts(bad)[:, 3]
    dice, _ = slice_dice_mvsf(ref, bad)
    flags = flag_slices(dice, {1: 0.7, 2: 0.7, 3: 0.7})
    assert flags[mid, 3] and flags[:, 3].sum() == 1
    corrected = corrected_areas(bad_areas, flags[:, 3])
    raw_error = abs(bad_areas.sum() - areas.sum()) / areas.sum()
    corrected_error = abs(corrected.sum() - areas.sum()) / areas.sum()
    assert raw_error > 0.05
    assert corrected_error < raw_error / 3
    assert corrected[mid] == pytest.approx((areas[mid - 1] + areas[mid + 1]) / 2)


def test_correction_leaves_the_most_basal_and_apical_slices_alone():
    areas = np.array([0, 50, 100, 120, 110, 60, 0], dtype=float)
    flagged = np.array([0, 1, 0, 1, 0, 1, 0], dtype=bool)
    out = corrected_areas(areas, flagged)
    assert out[1] == 50 and out[5] == 60  # first and last slices of the extent
    assert out[3] == pytest.approx((100 + 110) / 2)
    np.testing.assert_array_equal(corrected_areas(areas, np.zeros(7, bool)), areas)


def test_rules_stay_quiet_on_good_labels():
    from cmrassist_server.io.phantoms import make_phantom

    for seed in (1, 2, 3):
        p = make_phantom(seed)
        for label in (p.ed_label, p.es_label):
            assert check_rules(sitk.GetArrayFromImage(label).astype(np.uint8)) == []


def test_rules_fire_on_crafted_bad_labels(phantom):
    _, ref = phantom
    lv_slices = np.flatnonzero((ref == 3).any((1, 2)))
    mid = int(lv_slices[len(lv_slices) // 2])

    missing = ref.copy()
    missing[mid] = 0
    assert ("missing_slice", mid, None) in _rules(missing)

    no_rv = ref.copy()
    no_rv[no_rv == 1] = 0
    assert ("class_missing", None, "rv_cavity") in _rules(no_rv)

    open_ring = ref.copy()
    ys, xs = np.nonzero(ref[mid] == 2)
    upper = ys < np.percentile(ys, 70)
    open_ring[mid][ys[upper], xs[upper]] = 0  # most of the myocardium erased
    assert ("lv_not_enclosed", mid, "lv_cavity") in _rules(open_ring)

    detached = ref.copy()
    rv = detached[mid] == 1
    detached[mid][rv] = 0
    detached[mid][:6, :6] = 1  # the RV moved to a corner, far from the myocardium
    assert ("rv_detached", mid, "rv_cavity") in _rules(detached)

    islands = ref.copy()
    islands[mid][:4, -4:] = 3  # a stray LV blob of 16 pixels (specks under 10 mm^2 do not count)
    assert ("fragmented", mid, "lv_cavity") in _rules(islands)

    shrunk = ref.copy()
    cavity = shrunk[mid] == 3
    ys, xs = np.nonzero(cavity)
    keep = (np.abs(ys - ys.mean()) < 2) & (np.abs(xs - xs.mean()) < 2)
    shrunk[mid][ys[~keep], xs[~keep]] = 2
    assert ("area_jump", mid, "lv_cavity") in _rules(shrunk)

    lv_only = ref.copy()
    lv_only[mid][lv_only[mid] == 2] = 0
    assert ("class_missing_on_slice", mid, "lv_myocardium") in _rules(lv_only)


def test_every_corruption_lowers_quality_and_keeps_the_label_values(phantom):
    _, ref = phantom
    rng = np.random.default_rng(3)
    for name, fn in CORRUPTIONS.items():
        worse = [dice_3d(ref, fn(ref, rng))[1:].min() for _ in range(3)]
        assert min(worse) < 0.99, name
    seg, kind = corrupt(ref, rng)
    assert seg.shape == ref.shape and seg.dtype == ref.dtype and set(np.unique(seg)) <= {0, 1, 2, 3}
    assert all(part in CORRUPTIONS for part in kind.split("+"))


def test_thresholds_parse_numbers_and_per_class_values_and_refuse_bad_ones():
    assert parse_thresholds(None) == {1: 0.7, 2: 0.7, 3: 0.7}
    assert parse_thresholds(0.8) == {1: 0.8, 2: 0.8, 3: 0.8}
    assert parse_thresholds({"lv_cavity": 0.9}) == {1: 0.7, 2: 0.7, 3: 0.9}
    for bad in (1.5, "x", {"lv": 0.5}, {"lv_cavity": "high"}, [0.5]):
        with pytest.raises(ValueError):
            parse_thresholds(bad)


def test_rule_only_report_before_any_qc_model_matches_the_schema(phantom, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    image, ref = phantom
    report = QualityChecker(str(tmp_path / "none.pt")).check(image, ref)
    report.update(image="x", label="final", seconds={"qc": report.pop("seconds"), "segmentation": 0.0})
    with open(os.path.join(ROOT, "docs", "qc-report.schema.json")) as f:
        jsonschema.validate(report, json.load(f))
    assert report["learned"] is False and report["dice_3d"] is None
    assert report["volumes"]["raw"] == report["volumes"]["corrected"]  # good label: nothing flagged, nothing changed
    spacing = image.GetSpacing()
    assert report["volumes"]["raw"]["lv_cavity_ml"] == pytest.approx(
        (ref == 3).sum() * np.prod(spacing) / 1000, rel=1e-3
    )


@pytest.mark.slow
def test_qc_training_publishes_a_model_whose_predictions_follow_quality(tmp_path):
    """A short real QC training on phantom frames; its report ranks a badly corrupted label below the reference."""
    from monailabel.datastore.local import LocalDatastore

    from cmrassist_server.io.studies import phantom_studies, training_items
    from cmrassist_server.qc.training import QCTrainOptions, train_qc

    folder = str(tmp_path / "studies")
    phantom_studies(folder, 4, seed=21)
    items = training_items(LocalDatastore(folder, extensions=("*.nii.gz",), auto_reload=False))
    checkpoint = str(tmp_path / "model" / "qc.pt")
    events = []
    # A fixed amount of work (epochs, not minutes), so a busy machine trains the same model.
    result = train_qc(
        items,
        checkpoint,
        QCTrainOptions(max_epochs=12, max_minutes=30, snapshots=1, snapshot_minutes=5, corruptions_per_case=6, seed=2),
        log=lambda event, **fields: events.append(event if fields.get("stage") != "snapshot" else "snapshot"),
    )
    assert result.published and os.path.isfile(checkpoint) and os.path.isfile(checkpoint[:-3] + ".json")
    assert {"loading", "snapshot", "start", "epoch", "done"} <= set(events)
    record = json.load(open(checkpoint[:-3] + ".json"))
    assert (
        record["kind"] == "qc"
        and record["epochs"] >= 1
        and set(record["details"]["sources"]) >= {"reference", "corruption", "snapshot"}
    )
    assert result.best_val["mae"] < result.history[0]["val"]["mae"] - 0.05  # it learned something

    checker = QualityChecker(checkpoint)
    good_dice, bad_dice = [], []
    # Averaged over the frames: a 12-epoch model on 4 phantoms is weak, one frame alone may go either way.
    for item in items:
        image = sitk.ReadImage(item["image"])
        ref = sitk.GetArrayFromImage(sitk.ReadImage(item["label"])).astype(np.uint8)
        good = checker.check(image, ref)
        bad_label = ref.copy()
        bad_label[bad_label == 3], bad_label[ref == 1] = 1, 3  # LV and RV swapped everywhere
        bad = checker.check(image, bad_label)
        assert good["learned"] and bad["learned"]
        assert bad["summary"]["review_priority"] > good["summary"]["review_priority"]
        good_dice.append(good["dice_3d"]["lv_cavity"])
        bad_dice.append(bad["dice_3d"]["lv_cavity"])
    # Lower on average; by how much varies with the machine's arithmetic (0.02 to 0.2 seen for this 12-epoch model).
    assert np.mean(bad_dice) < np.mean(good_dice)

"""Label propagation across cine frames by registration, and simulated non-expert labels."""

import numpy as np
import pytest
import SimpleITK as sitk

from cmrassist_server.annotations.nonexpert import simulate_nonexpert
from cmrassist_server.annotations.propagation import (
    PropagationOptions,
    propagate_cine,
    propagate_frame,
    through_plane_check,
    through_plane_model,
)
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.release.shipped import shipped_folder
from cmrassist_server.segmentation.predictor import SegmentationPredictor, served_segmentation


def dice(a, b):
    s = a.sum() + b.sum()
    return 2 * np.logical_and(a, b).sum() / s if s else 1.0


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(81, with_cine=True)


def test_propagating_ed_to_es_beats_copying_the_ed_label(phantom):
    ed, es = phantom.ed_image, phantom.es_image
    o = Orientation.of(ed)
    ed_img, es_img = (o.to_canonical(sitk.GetArrayFromImage(i).astype(np.float32)) for i in (ed, es))
    ed_lab, es_lab = (o.to_canonical(sitk.GetArrayFromImage(i)) for i in (phantom.ed_label, phantom.es_label))
    warped = propagate_frame(ed_img, ed_lab, es_img, o.spacing)
    assert warped.shape == es_lab.shape and set(np.unique(warped)) <= {0, 1, 2, 3}
    for value in (1, 2, 3):
        moved, copied = dice(warped == value, es_lab == value), dice(ed_lab == value, es_lab == value)
        assert moved > copied + 0.02, (value, moved, copied)
    assert not warped[~ed_lab.reshape(len(ed_lab), -1).any(1)].any()  # unlabelled slices stay unlabelled


def test_a_cine_gets_every_frame_labelled_with_progress(phantom):
    cine = phantom.cine
    ed_label = sitk.GetArrayFromImage(phantom.ed_label)
    done = []
    labels = propagate_cine(
        cine, ed_label, 0, targets=[phantom.anatomy.es_frame], progress=lambda n, t: done.append((n, t))
    )
    assert labels.shape == (cine.GetSize()[3],) + ed_label.shape and done == [(1, 1)]
    assert np.array_equal(labels[0], ed_label) and labels[phantom.anatomy.es_frame].any()
    assert not labels[1].any()  # not asked for
    with pytest.raises(ValueError, match="outside"):
        propagate_cine(cine, ed_label, 40)
    with pytest.raises(ValueError, match="shape"):
        propagate_cine(cine, ed_label[:-1], 0)


def test_simulated_non_experts_err_where_non_experts_do():
    truths = [sitk.GetArrayFromImage(make_phantom(s, with_cine=False).ed_label) for s in (90, 91, 92)]
    scores = {}
    for severity in ("well_trained", "brief"):
        rng = np.random.default_rng(0)
        pairs = [(simulate_nonexpert(t, severity, rng), t) for t in truths for _ in range(4)]
        scores[severity] = {v: np.mean([dice(c == v, t == v) for c, t in pairs]) for v in (1, 2, 3)}
    for v in (1, 2, 3):
        assert scores["brief"][v] < scores["well_trained"][v] < 1.0
    assert scores["brief"][2] < scores["brief"][3]  # myocardium worse than the LV cavity
    with pytest.raises(ValueError, match="severity"):
        simulate_nonexpert(truths[0], "clueless", np.random.default_rng(0))


def test_a_class_the_model_finds_on_too_little_of_a_slice_is_dropped_there_alone():
    warped = np.zeros((3, 10, 10), np.uint8)
    warped[:, 2:8, 2:8] = 1  # RV on every slice, 36 pixels
    warped[:, 4:6, 4:6] = 3  # LV inside it, 4 pixels
    model = np.zeros_like(warped)
    model[0, 2:8, 2:8] = 1  # slice 0: the model finds all of the RV
    model[1, 2:4, 2:8] = 1  # slice 1: 12 of 32 RV pixels (0.375): kept at 0.25, dropped at 0.5
    model[:, 4:6, 4:6] = 3  # the LV everywhere
    kept = through_plane_check(warped, model, 0.25)
    assert (kept[0] == warped[0]).all() and (kept[1] == warped[1]).all()
    assert not (kept[2] == 1).any() and (kept[2] == 3).sum() == 4  # slice 2: the RV left, the LV stays
    strict = through_plane_check(warped, model, 0.5)
    assert not (strict[1] == 1).any() and (strict[0] == warped[0]).all()
    assert (through_plane_check(warped, warped, 1.0) == warped).all()  # a model that agrees changes nothing
    elsewhere = np.roll(model, 5, axis=2)  # a model that finds the RV somewhere else: not trusted with it
    assert (through_plane_check(warped, elsewhere, 0.5) == 1).sum() == (warped == 1).sum()


def test_a_cine_propagated_with_the_model_is_checked_through_plane_on_every_target(phantom):
    predictor = SegmentationPredictor(f"{shipped_folder()}/segmentation.pt", device="cpu")
    cine, es = phantom.cine, phantom.anatomy.es_frame
    orientation = Orientation.of(cine)
    ed_label = sitk.GetArrayFromImage(phantom.ed_label)
    segmented = []

    def segment(frame):
        segmented.append(frame)
        return predictor.segment_frame(frame, orientation)

    checked = propagate_cine(cine, ed_label, 0, targets=[es], segment=segment)
    plain = propagate_cine(cine, ed_label, 0, targets=[es])
    assert len(segmented) == 1
    model = orientation.to_canonical(predictor.segment_frame(segmented[0], orientation))
    options = PropagationOptions()
    canonical = orientation.to_canonical(plain[es])
    expected = through_plane_check(canonical, model, options.through_plane_keep, options.through_plane_trust)
    assert np.array_equal(orientation.to_canonical(checked[es]), expected)
    # The rule itself, with a model that is right (the expert's ES label): it only removes what left the slice.
    truth = sitk.GetArrayFromImage(phantom.es_label)
    oracle = propagate_cine(cine, ed_label, 0, targets=[es], segment=lambda frame: truth)
    for value in (1, 2, 3):
        assert dice(oracle[es] == value, truth == value) >= dice(plain[es] == value, truth == value)


def test_a_missing_or_damaged_served_model_leaves_propagation_to_registration_and_says_so(tmp_path):
    damaged = tmp_path / "segmentation.pt"
    damaged.write_bytes(b"not a checkpoint")
    predictor, said = through_plane_model(served_segmentation(str(damaged)))
    assert predictor is None and said.startswith("off (segmentation model unusable:")
    assert through_plane_model(served_segmentation(str(tmp_path / "none.pt"))) == (None, "off (no segmentation model)")
    assert through_plane_model(None) == (None, "off (no segmentation model)")
    shipped = served_segmentation(f"{shipped_folder()}/segmentation.pt", device="cpu")
    assert through_plane_model(shipped, asked=False) == (None, "off")
    predictor, said = through_plane_model(shipped)
    assert isinstance(predictor, SegmentationPredictor) and said == "segmentation model"

"""Label propagation across cine frames by registration, and simulated non-expert labels."""

import numpy as np
import pytest
import SimpleITK as sitk

from cmrassist_server.annotations.nonexpert import simulate_nonexpert
from cmrassist_server.annotations.propagation import propagate_cine, propagate_frame
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.phantoms import make_phantom


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

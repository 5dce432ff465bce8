import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from cmrassist_server.imaging.imageio import Orientation, write_label_like
from cmrassist_server.imaging.preprocess import (
    CardiacPreprocessor,
    PreprocessConfig,
    crop_or_pad,
    normalize_intensity,
    undo_crop_or_pad,
)
from cmrassist_server.io.phantoms import make_phantom
from CMRAssistCore.measures import dice


def onehot_probs(pre, label_zyx, orientation, ctx_shape_like):
    """Perfect 'network output' for a label: its one-hot at the network grid, in the inference window."""
    resampled = pre.resampled_label(label_zyx, orientation)
    window, _ = crop_or_pad(resampled, ctx_shape_like[0], ctx_shape_like[1])
    return F.one_hot(torch.from_numpy(window.astype(np.int64)), 4).permute(0, 3, 1, 2).float()


def test_orientation_round_trip_for_permuted_and_flipped_directions():
    rng = np.random.default_rng(0)
    array = rng.normal(size=(9, 40, 50)).astype(np.float32)  # (z, y, x)
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((1.4, 1.4, 8.0))
    img.SetDirection((-1, 0, 0, 0, 0, 1, 0, -1, 0))
    o = Orientation.of(img)
    canon = o.to_canonical(array)
    assert canon.shape[0] == 9 and o.spacing == (8.0, 1.4, 1.4)
    assert np.array_equal(o.from_canonical(canon), array)
    # Slice axis stored first (largest spacing on sitk axis 0) is moved first in canonical order.
    img2 = sitk.GetImageFromArray(np.zeros((40, 50, 7), np.float32))
    img2.SetSpacing((9.0, 1.5, 1.5))
    o2 = Orientation.of(img2)
    assert o2.to_canonical(np.zeros((40, 50, 7))).shape == (7, 40, 50) and o2.spacing[0] == 9.0


def test_crop_or_pad_inverse_is_exact():
    a = np.arange(3 * 30 * 20, dtype=np.float32).reshape(3, 30, 20)
    for center, size in (((15, 10), (32, 32)), ((5, 18), (16, 16)), ((15, 10), (30, 20))):
        w, box = crop_or_pad(a, center, size)
        back = undo_crop_or_pad(torch.from_numpy(w), box, fill=-1.0).numpy()
        assert back.shape == a.shape
        covered = back != -1.0
        assert covered.any() and np.array_equal(back[covered], a[covered])
    w, box = crop_or_pad(a, (15, 10), (48, 48))
    assert np.array_equal(undo_crop_or_pad(torch.from_numpy(w), box).numpy(), a)


def test_intensity_normalisation_is_scale_free():
    x = np.random.default_rng(1).gamma(2.0, size=(4, 32, 32)).astype(np.float32)
    assert np.allclose(normalize_intensity(x), normalize_intensity(x * 300 + 7), atol=1e-5)
    n = normalize_intensity(x)
    assert n.min() == 0.0 and n.max() == 1.0


def test_inverse_restores_the_input_geometry_and_labels(tmp_path):
    p = make_phantom(21, with_cine=False)
    pre = CardiacPreprocessor()
    image, label = p.ed_image, sitk.GetArrayFromImage(p.ed_label)
    o = Orientation.of(image)
    stack, ctx = pre.inference_input(sitk.GetArrayFromImage(image).astype(np.float32), o)
    assert stack.shape[-1] % 16 == 0 and stack.shape[-2] % 16 == 0
    centre = ((ctx.resampled_hw[0] - 1) / 2 + 0.5, (ctx.resampled_hw[1] - 1) / 2 + 0.5)
    probs = onehot_probs(pre, label, o, (centre, ctx.box.size))
    back = pre.invert_probabilities(probs, ctx)
    assert back.shape == label.shape
    for v in (1, 2, 3):
        assert dice(back, label, v) > 0.93  # resampling there and back only blurs boundaries
    out = write_label_like(back, image, str(tmp_path / "l.nii.gz"))
    written = sitk.ReadImage(out)
    assert written.GetSize() == image.GetSize()
    # NIfTI stores float32: geometry equal to float32 precision.
    for a, b in (
        (written.GetSpacing(), image.GetSpacing()),
        (written.GetOrigin(), image.GetOrigin()),
        (written.GetDirection(), image.GetDirection()),
    ):
        assert np.allclose(a, b, rtol=1e-6, atol=1e-6)


def test_inverse_is_exact_when_no_resampling_is_needed():
    pre = CardiacPreprocessor(PreprocessConfig(spacing_mm=1.5))
    rng = np.random.default_rng(2)
    label = rng.integers(0, 4, size=(6, 48, 40)).astype(np.uint8)
    img = sitk.GetImageFromArray(rng.normal(size=label.shape).astype(np.float32))
    img.SetSpacing((1.5, 1.5, 8.0))
    img.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    o = Orientation.of(img)
    _, ctx = pre.inference_input(sitk.GetArrayFromImage(img), o)
    canonical = o.to_canonical(label)
    window, _ = crop_or_pad(canonical, (24, 20), ctx.box.size)
    probs = F.one_hot(torch.from_numpy(window.astype(np.int64)), 4).permute(0, 3, 1, 2).float()
    assert np.array_equal(pre.invert_probabilities(probs, ctx), label)


def test_neighbour_slices_give_the_same_channels_to_training_and_inference():
    """2.5D input: the slice, the one below and the one above (ends repeated), built in one place."""
    import numpy as np

    from cmrassist_server.imaging.imageio import Orientation
    from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig
    from cmrassist_server.io.phantoms import make_phantom

    pre = CardiacPreprocessor(PreprocessConfig(neighbour_slices=1))
    assert pre.config.input_count() == 3 and pre.config.input_count(prior=object()) == 4
    phantom = make_phantom(3, with_cine=False)
    image = phantom.ed_image
    orientation = Orientation.of(image)
    import SimpleITK as sitk

    stack, _ = pre.resampled_stack(sitk.GetArrayFromImage(image), orientation)
    channels = pre.input_channels(stack)
    n = len(stack)
    assert channels.shape == (n, 3) + stack.shape[1:]
    np.testing.assert_array_equal(channels[:, 0], stack)
    np.testing.assert_array_equal(channels[1:, 1], stack[:-1])  # the slice below
    np.testing.assert_array_equal(channels[:-1, 2], stack[1:])  # the slice above
    np.testing.assert_array_equal(channels[0, 1], stack[0])  # the end repeats
    window, _ = pre.inference_input(sitk.GetArrayFromImage(image), orientation)
    assert window.shape[1] == 3  # what inference feeds the network has the same channels


def test_myocardium_odds_give_myocardium_that_background_rivals_to_the_next_most_probable_class():
    from cmrassist_server.imaging.preprocess import class_map, label_map

    scores = torch.softmax(torch.from_numpy(np.random.default_rng(3).normal(size=(4, 4, 32, 32))).float(), 1)
    plain = class_map(scores)
    assert torch.equal(label_map(scores, 1.0), plain)
    previous = plain
    for odds in (1.5, 2.0, 3.0):
        labels = label_map(scores, odds)
        changed = labels != plain
        assert changed.any() and (plain[changed] == 2).all() and (labels[changed] != 2).all()
        assert (scores[:, 2][changed] < odds * scores[:, 0][changed]).all()
        others = scores.clone()
        others[:, 2] = -1
        assert torch.equal(labels[changed], others.argmax(1)[changed])  # the most probable other class
        assert (labels[changed] == 0).any() and (labels[changed] != 0).any()
        kept = (labels == 2).nonzero(as_tuple=True)
        assert (scores[:, 2][kept] >= odds * scores[:, 0][kept]).all()
        assert ((labels == 2) <= (previous == 2)).all()  # higher odds never add myocardium
        previous = labels

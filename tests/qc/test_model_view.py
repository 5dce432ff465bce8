"""The QC network's view of the segmentation model (its probabilities and their agreement with the checked label)
is built the same way when the QC set is made for training and when a study is checked."""

import os

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, CropBox, PreprocessConfig, undo_crop_or_pad
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.dataset import build_training_set
from cmrassist_server.qc.model_view import FULL_SLICE, agreement, full_slice_view
from cmrassist_server.qc.network import QCModel, QCSpec, load_qc, predict_slices, publish_qc, qc_input, window_center
from cmrassist_server.qc.training import QCRecipe, QCTrainOptions
from cmrassist_server.release.shipped import shipped_folder
from cmrassist_server.segmentation.data import prepare_cases
from cmrassist_server.segmentation.ensemble import EnsemblePredictor
from cmrassist_server.segmentation.network import NetworkSpec, SegmentationModel, publish_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from cmrassist_server.segmentation.views import window_view


def _segmentation_view(seed: int = 0) -> SegmentationModel:
    torch.manual_seed(seed)
    preprocess = PreprocessConfig(neighbour_slices=1)  # 2.5D, as the shipped model
    spec = NetworkSpec(channels=(8, 16, 32), in_channels=preprocess.input_count())
    return SegmentationModel(spec.build().eval(), spec, preprocess, {})


def _ensemble(tmp_path) -> EnsemblePredictor:
    """Two members on disk, loaded as batch work loads the shipped ensemble."""
    paths = []
    for seed in (0, 1):
        member = _segmentation_view(seed)
        paths.append(str(tmp_path / f"fold{seed}.pt"))
        publish_segmentation(
            paths[-1], member.network, member.spec, member.preprocess, ModelRecord("segmentation", "mean")
        )
    return EnsemblePredictor(paths, device="cpu")


@pytest.mark.parametrize("ensemble", [False, True], ids=["served model", "ensemble with disagreement"])
def test_qc_inputs_are_the_same_at_training_and_at_checking(tmp_path, ensemble):
    phantom = make_phantom(3, with_cine=False)
    image_path, label_path = str(tmp_path / "ed.nii.gz"), str(tmp_path / "ed_gt.nii.gz")
    sitk.WriteImage(phantom.ed_image, image_path)
    sitk.WriteImage(phantom.ed_label, label_path)
    pre = CardiacPreprocessor(PreprocessConfig())
    cases = prepare_cases("ed", "phantom003", image_path, label_path, pre)
    # Training and checking each hold their own predictor: the checked view is computed afresh, not remembered.
    segmentation = _ensemble(tmp_path) if ensemble else _segmentation_view()
    trained_with = _ensemble(tmp_path) if ensemble else SegmentationPredictor(model=segmentation, device="cpu")
    training = build_training_set(
        cases,
        corruptions_per_case=1,
        models=[],
        device="cpu",
        seed=0,
        window=128,
        preprocessor=pre,
        views=lambda case: trained_with,
        disagreement=ensemble,
    )
    torch.manual_seed(1)
    spec = QCSpec(channels=(8, 16), model_inputs=True, disagreement=ensemble)
    qc = QCModel(spec.build().eval(), pre.config, {})
    checker = QualityChecker(None, segmentation=segmentation)
    image_zyx = sitk.GetArrayFromImage(phantom.ed_image).astype(np.float32)
    label_zyx = sitk.GetArrayFromImage(phantom.ed_label)
    orientation = Orientation.of(phantom.ed_image)
    sources = [variant.source for variant in training.variants]
    assert "reference" in sources and len(sources) == 2  # the reference and one corruption
    for v, variant in enumerate(training.variants):
        n = variant.dice.shape[0]
        x, _, features = training.inputs([(v, z) for z in range(n)])
        assert x.shape[1] == qc.network.spec.in_channels and features.shape == (n, qc.network.spec.n_features)
        if variant.source == "reference":  # the same label checked as a study: same inputs, same predictions
            trained_on, _ = predict_slices(qc.network, x, "cpu", features)
            checked, _, _ = checker.predict(image_zyx, label_zyx, orientation, qc)
            np.testing.assert_allclose(checked, trained_on, atol=1e-4)


def test_disagreement_is_zero_where_every_pass_agrees_and_grows_with_the_passes_split():
    lv = torch.zeros(1, 3, 4, 40, 40)
    lv[:, :, 3] = 1.0
    rv = torch.zeros_like(lv)
    rv[:, :, 1] = 1.0
    whole = CropBox(0, 0, (40, 40), (40, 40))
    agreeing = torch.cat([lv, lv])
    assert torch.allclose(window_view(agreeing, agreeing.mean(0), whole).disagreement, torch.zeros(3, 4))
    split = torch.cat([lv, rv])
    seen = window_view(split, split.mean(0), whole)
    # Per class, the pass holding it departs from the half-mean by 0.5 / 1.5, the other by 0.5 / 0.5: 2/3.
    np.testing.assert_allclose(seen.disagreement[:, [1, 3]], 2 / 3, atol=1e-2)
    assert seen.disagreement[:, [0, 2]].max() < 1e-3  # classes neither pass holds: agreed on
    np.testing.assert_allclose(seen.on_stack().probs[:, 3].astype(np.float32), 0.5, atol=1e-3)
    np.testing.assert_allclose(  # a pass listed twice changes nothing: the passes' spread, not their count
        window_view(torch.cat([lv, rv, lv, rv]), split.mean(0), whole).disagreement, seen.disagreement, atol=1e-6
    )


def test_disagreement_on_a_window_is_what_it_would_be_on_the_whole_grid():
    passes = torch.softmax(torch.randn(3, 2, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 3, dim=2)
    box = CropBox(top=10, left=-4, size=(16, 16), source=(40, 30))  # partly outside the grid, as at an edge
    windowed = window_view(passes, passes.mean(0), box)
    full = undo_crop_or_pad(passes, box)
    full[:, :, 0] += undo_crop_or_pad(torch.zeros(16, 16), box, fill=1.0)
    whole = window_view(full, full.mean(0), CropBox(0, 0, (40, 30), (40, 30)))
    np.testing.assert_allclose(windowed.disagreement, whole.disagreement, atol=1e-6)
    np.testing.assert_array_equal(windowed.on_stack().probs, whole.on_stack().probs)


def test_agreement_is_one_where_the_label_matches_the_networks_own_and_falls_as_it_departs():
    label = np.zeros((1, 32, 32), np.int64)
    label[0, 8:24, 8:24] = 3
    probs = np.stack([label == c for c in range(4)], axis=1).astype(np.float32)
    assert np.allclose(agreement(label, probs), 1.0)
    shifted = np.roll(label, 6, axis=2)
    worse = agreement(shifted, probs)
    assert worse[0, 3] < 0.8 and worse[0, 7] < 0.8 and worse[0, 1] == 1.0  # LV cavity falls, absent RV stays 1


def test_a_qc_model_published_before_the_segmentation_pass_view_keeps_the_whole_slice_view_it_was_trained_on(
    tmp_path,
):
    shipped = load_qc(os.path.join(shipped_folder(), "qc.pt"))  # its checkpoint names no view: trained on whole slices
    assert shipped.network.spec.view == FULL_SLICE and shipped.network.spec.model_inputs
    segmentation = SegmentationPredictor(os.path.join(shipped_folder(), "segmentation.pt"), device="cpu")
    phantom = make_phantom(4, with_cine=False)
    label = segmentation.segment(phantom.ed_image)
    calls = [0]
    segmentation.model.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    image_zyx = sitk.GetArrayFromImage(phantom.ed_image).astype(np.float32)
    orientation = Orientation.of(phantom.ed_image)
    checked = QualityChecker(None, segmentation=segmentation).predict(image_zyx, label, orientation, shipped)
    assert calls[0] == 2  # the kept pass is not its view: PyTorch runs whole slices, as is and flipped
    pre = CardiacPreprocessor(shipped.preprocess)
    stack, _ = pre.resampled_stack(image_zyx, orientation)
    resampled = pre.resampled_label(label, orientation)
    seen = full_slice_view(segmentation, stack)
    x, features = qc_input(stack, resampled, window_center(resampled), shipped.network.spec.window, seen.probs)
    np.testing.assert_allclose(checked[0], predict_slices(shipped.network, x, "cpu", features)[0], atol=1e-6)


def test_a_whole_slice_qc_looks_through_an_ensembles_first_member_alone(tmp_path):
    from ensemble_helpers import tiny_model

    from cmrassist_server.segmentation.ensemble import EnsemblePredictor

    shipped = load_qc(os.path.join(shipped_folder(), "qc.pt"))
    paths = [tiny_model(str(tmp_path / f"fold{k}.pt"), seed=k) for k in range(3)]
    ensemble = EnsemblePredictor(paths, device="cpu", engine="torch")
    calls = [0, 0, 0]
    for k, member in enumerate(ensemble.members):
        member.register_forward_hook(lambda *a, k=k: calls.__setitem__(k, calls[k] + 1))
    phantom = make_phantom(4, with_cine=False)
    image_zyx = sitk.GetArrayFromImage(phantom.ed_image).astype(np.float32)
    label = sitk.GetArrayFromImage(phantom.ed_label).astype(np.uint8)
    checked = QualityChecker(None, segmentation=ensemble).predict(
        image_zyx, label, Orientation.of(phantom.ed_image), shipped
    )
    assert calls == [2, 0, 0]  # one network as is and flipped, as the QC was trained: not ten passes a frame
    first = SegmentationPredictor(paths[0], device="cpu", engine="torch")
    alone = QualityChecker(None, segmentation=first).predict(
        image_zyx, label, Orientation.of(phantom.ed_image), shipped
    )
    np.testing.assert_allclose(checked[0], alone[0], atol=1e-6)


def test_a_qc_model_naming_an_unknown_view_is_refused(tmp_path):
    spec = QCSpec(channels=(8, 16), model_inputs=True, view="tomorrow's view")
    path = str(tmp_path / "qc.pt")
    publish_qc(path, spec.build(), PreprocessConfig(), ModelRecord("qc", "mae"))
    with pytest.raises(CMRAssistError, match="unknown view"):
        load_qc(path)


def test_a_qc_of_the_whole_slice_view_sets_no_bar_for_the_first_retrain_on_the_segmentation_pass_view(tmp_path):
    recipe = QCRecipe([], str(tmp_path / "qc.pt"), QCTrainOptions())
    recipe.served = load_qc(os.path.join(shipped_folder(), "qc.pt")).network  # full-slice: scored on other inputs
    assert recipe.spec.view == "segmentation-pass" and recipe.served_val() is None

"""The QC network's view of the segmentation model (its probabilities and their agreement with the checked label)
is built the same way when the QC set is made for training and when a study is checked."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.dataset import build_training_set
from cmrassist_server.qc.model_view import agreement, model_view
from cmrassist_server.qc.network import QCModel, QCSpec, predict_slices
from cmrassist_server.segmentation.data import prepare_cases
from cmrassist_server.segmentation.ensemble import EnsemblePredictor
from cmrassist_server.segmentation.network import NetworkSpec, SegmentationModel, publish_segmentation


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
    segmentation = _ensemble(tmp_path) if ensemble else _segmentation_view()
    members = QualityChecker(None, segmentation=segmentation).view()
    assert len(members) == (2 if ensemble else 1)
    training = build_training_set(
        cases,
        corruptions_per_case=1,
        models=[],
        device="cpu",
        seed=0,
        window=128,
        preprocessor=pre,
        views=lambda case: members,
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


class _Constant(torch.nn.Module):
    """A 'network' that answers the same logits everywhere: its flipped pass agrees with its plain one."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32).view(1, -1, 1, 1)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1, x.shape[-2], x.shape[-1])


def _constant(logits) -> SegmentationModel:
    view = _segmentation_view()
    return SegmentationModel(_Constant(logits), view.spec, view.preprocess, {})


def test_disagreement_is_zero_where_every_pass_agrees_and_grows_with_the_members_split():
    stack = np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)
    lv, rv = [0.0, 0.0, 0.0, 9.0], [0.0, 9.0, 0.0, 0.0]
    agreeing = model_view([_constant(lv), _constant(lv)], stack, 1.5, "cpu")
    assert agreeing.disagreement.shape == (3, 4) and np.allclose(agreeing.disagreement, 0.0, atol=1e-4)
    split = model_view([_constant(lv), _constant(rv)], stack, 1.5, "cpu")
    # Per class, the member holding it departs from the half-mean by 0.5 / 1.5, the other by 0.5 / 0.5: 2/3.
    np.testing.assert_allclose(split.disagreement[:, [1, 3]], 2 / 3, atol=1e-2)
    assert split.disagreement[:, [0, 2]].max() < 1e-3  # classes neither member holds: agreed on
    np.testing.assert_allclose(split.probs[:, 3].astype(np.float32), 0.5, atol=1e-3)
    one = _segmentation_view()
    np.testing.assert_allclose(  # a member listed twice changes nothing: the passes' spread, not their count
        model_view([one, one], stack, 1.5, "cpu").disagreement,
        model_view([one], stack, 1.5, "cpu").disagreement,
        atol=1e-6,
    )


def test_agreement_is_one_where_the_label_matches_the_networks_own_and_falls_as_it_departs():
    label = np.zeros((1, 32, 32), np.int64)
    label[0, 8:24, 8:24] = 3
    probs = np.stack([label == c for c in range(4)], axis=1).astype(np.float32)
    assert np.allclose(agreement(label, probs), 1.0)
    shifted = np.roll(label, 6, axis=2)
    worse = agreement(shifted, probs)
    assert worse[0, 3] < 0.8 and worse[0, 7] < 0.8 and worse[0, 1] == 1.0  # LV cavity falls, absent RV stays 1

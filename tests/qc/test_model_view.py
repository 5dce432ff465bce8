"""The QC network's view of the segmentation model (its probabilities and their agreement with the checked label)
is built the same way when the QC set is made for training and when a study is checked."""

import numpy as np
import SimpleITK as sitk
import torch

from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.dataset import build_training_set
from cmrassist_server.qc.model_view import agreement
from cmrassist_server.qc.network import QCModel, QCSpec, predict_slices
from cmrassist_server.segmentation.data import prepare_cases
from cmrassist_server.segmentation.network import NetworkSpec, SegmentationModel


def _segmentation_view() -> SegmentationModel:
    torch.manual_seed(0)
    preprocess = PreprocessConfig(neighbour_slices=1)  # 2.5D, as the shipped model
    spec = NetworkSpec(channels=(8, 16, 32), in_channels=preprocess.input_count())
    return SegmentationModel(spec.build().eval(), spec, preprocess, {})


def test_qc_inputs_are_the_same_at_training_and_at_checking(tmp_path):
    phantom = make_phantom(3, with_cine=False)
    image_path, label_path = str(tmp_path / "ed.nii.gz"), str(tmp_path / "ed_gt.nii.gz")
    sitk.WriteImage(phantom.ed_image, image_path)
    sitk.WriteImage(phantom.ed_label, label_path)
    pre = CardiacPreprocessor(PreprocessConfig())
    cases = prepare_cases("ed", "phantom003", image_path, label_path, pre)
    view = _segmentation_view()
    training = build_training_set(cases, corruptions_per_case=1, models=[], device="cpu", seed=0, window=128,
                                  preprocessor=pre, view=view)  # fmt: skip
    torch.manual_seed(1)
    qc = QCModel(QCSpec(channels=(8, 16), model_inputs=True).build().eval(), pre.config, {})
    checker = QualityChecker(None, segmentation=view)
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


def test_agreement_is_one_where_the_label_matches_the_networks_own_and_falls_as_it_departs():
    label = np.zeros((1, 32, 32), np.int64)
    label[0, 8:24, 8:24] = 3
    probs = np.stack([label == c for c in range(4)], axis=1).astype(np.float32)
    assert np.allclose(agreement(label, probs), 1.0)
    shifted = np.roll(label, 6, axis=2)
    worse = agreement(shifted, probs)
    assert worse[0, 3] < 0.8 and worse[0, 7] < 0.8 and worse[0, 1] == 1.0  # LV cavity falls, absent RV stays 1

"""QC without extra passes (issue 23, item 3): the QC of a frame just segmented takes the view the segmentation
pass left (``segmentation/views.py``), runs no network pass of its own, and gives exactly what a QC that
recomputes the view gives."""

from typing import List

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.network import QCModel, QCSpec
from cmrassist_server.segmentation.ensemble import EnsemblePredictor
from cmrassist_server.segmentation.network import NetworkSpec, SegmentationModel, publish_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor


def _model(seed: int) -> SegmentationModel:
    torch.manual_seed(seed)
    preprocess = PreprocessConfig(neighbour_slices=1)
    spec = NetworkSpec(channels=(8, 16, 32), in_channels=preprocess.input_count())
    return SegmentationModel(spec.build().eval(), spec, preprocess, {})


def _predictor(kind: str, tmp_path) -> SegmentationPredictor:
    """A fresh predictor: one model in memory, or a two-member ensemble with flips loaded from disk."""
    if kind == "served model":
        return SegmentationPredictor(model=_model(0), device="cpu")
    paths = []
    for seed in (0, 1):
        member = _model(seed)
        paths.append(str(tmp_path / f"fold{seed}.pt"))
        record = ModelRecord("segmentation", "mean")
        publish_segmentation(paths[-1], member.network, member.spec, member.preprocess, record)
    return EnsemblePredictor(paths, device="cpu", engine="torch")  # its torch members run: their passes are counted


def _qc(disagreement: bool) -> QCModel:
    torch.manual_seed(3)
    spec = QCSpec(channels=(8, 16), model_inputs=True, disagreement=disagreement)
    return QCModel(spec.build().eval(), PreprocessConfig(), {})


def _count_passes(predictor: SegmentationPredictor) -> List[int]:
    """How many network forward passes the predictor has run since (every member's)."""
    calls = [0]
    for network in getattr(predictor, "members", [predictor.model]):
        network.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("kind", ["served model", "ensemble"])
def test_the_qc_of_a_frame_just_segmented_runs_no_pass_and_equals_a_recomputed_qc(tmp_path, kind):
    phantom = make_phantom(5, with_cine=False)
    image = phantom.ed_image
    image_zyx = sitk.GetArrayFromImage(image).astype(np.float32)
    orientation = Orientation.of(image)
    qc = _qc(disagreement=kind == "ensemble")
    segmenting = _predictor(kind, tmp_path)
    label = segmenting.segment(image)
    calls = _count_passes(segmenting)
    kept = QualityChecker(None, segmentation=segmenting).predict(image_zyx, label, orientation, qc)
    # The segmentation's passes were taken: an ensemble's hold all the view needs (no network ran for the QC);
    # one model adds only its left-right flip (one batch of slices), never the pass it already ran.
    assert calls[0] == (0 if kind == "ensemble" else 1)

    fresh = _predictor(kind, tmp_path)
    fresh_calls = _count_passes(fresh)
    recomputed = QualityChecker(None, segmentation=fresh).predict(image_zyx, label, orientation, qc)
    # A predictor that never saw the frame runs every pass: the heart-window probe's and the frame's (an ensemble:
    # each of 2 members under 3 flips; one model: plain, then the view's flip).
    assert fresh_calls[0] == (2 * 2 * 3 if kind == "ensemble" else 1 + 2)
    for a, b in zip(kept, recomputed):
        np.testing.assert_allclose(a, b, atol=1e-6)

    stack, _ = CardiacPreprocessor(PreprocessConfig()).resampled_stack(image_zyx, orientation)
    view = fresh.stack_view(stack)
    assert view.disagreement.max() > 0  # members and flips, or one model and its flip, disagree somewhere


def test_a_predictor_keeps_the_last_frames_views_and_recomputes_older_ones_alike():
    predictor = SegmentationPredictor(model=_model(0), device="cpu")
    predictor.views.size = 2
    pre = CardiacPreprocessor(PreprocessConfig())
    stacks = []
    for seed in (1, 2, 3):
        phantom = make_phantom(seed, with_cine=False)
        frame = sitk.GetArrayFromImage(phantom.ed_image).astype(np.float32)
        predictor.segment(phantom.ed_image)
        stacks.append(pre.resampled_stack(frame, Orientation.of(phantom.ed_image))[0])
    calls = _count_passes(predictor)
    newest = predictor.stack_view(stacks[2])
    assert calls[0] == 1  # kept: only the flip the view adds
    predictor.stack_view(stacks[2])
    assert calls[0] == 1  # the completed view is kept in its place
    oldest = predictor.stack_view(stacks[0])  # evicted: heart-window probe, its pass and its flip again
    assert calls[0] == 1 + 3
    fresh = SegmentationPredictor(model=_model(0), device="cpu")
    np.testing.assert_array_equal(oldest.probs, fresh.stack_view(stacks[0]).probs)
    np.testing.assert_array_equal(newest.probs, fresh.stack_view(stacks[2]).probs)
    assert oldest.probs.shape == (stacks[0].shape[0], 4) + stacks[0].shape[1:]
    np.testing.assert_allclose(oldest.probs.astype(np.float32).sum(1), 1.0, atol=5e-3)  # a distribution everywhere


def test_the_view_is_each_model_as_is_and_flipped_left_right_whatever_flips_the_segmentation_ran(tmp_path):
    """Batch work's ensemble also averages an up-down flip; the QC's view leaves it out, so a QC trained on one
    model's pass and its flip sees the same kind of view everywhere."""
    plain = _predictor("ensemble", tmp_path)
    paths = [str(tmp_path / f"fold{seed}.pt") for seed in (0, 1)]
    unflipped = EnsemblePredictor(paths, device="cpu", engine="torch", flips=False)
    for predictor in (plain, unflipped):
        predictor.heart_window = False  # the probe pass would differ with the flips: the same window for both
    phantom = make_phantom(6, with_cine=False)
    frame = sitk.GetArrayFromImage(phantom.ed_image).astype(np.float32)
    stack, _ = CardiacPreprocessor(PreprocessConfig()).resampled_stack(frame, Orientation.of(phantom.ed_image))
    with_all, on_demand = plain.stack_view(stack), unflipped.stack_view(stack)
    np.testing.assert_allclose(with_all.probs.astype(np.float32), on_demand.probs.astype(np.float32), atol=1e-3)
    np.testing.assert_allclose(with_all.disagreement, on_demand.disagreement, atol=1e-5)

"""The fold ensemble: its probabilities are the mean of its members' (and of their flips), and members that would
see different inputs are refused."""

import pytest
import torch

from cmrassist_server.core.checkpoints import ModelRecord, file_sha256
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.segmentation.engine import OpenVinoEngine, engine_path
from cmrassist_server.segmentation.ensemble import EnsemblePredictor
from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor

SPEC = NetworkSpec(channels=(8, 16, 32), in_channels=3)
PRE = PreprocessConfig(neighbour_slices=1)


def _members(folder, count=3, pre=PRE):
    paths = []
    for k in range(count):
        torch.manual_seed(k)  # members differ, as fold models do
        path = str(folder / f"segmentation-fold{k}.pt")
        publish_segmentation(path, SPEC.build(), SPEC, pre, ModelRecord(kind="segmentation", metric="mean"))
        paths.append(path)
    return paths


def test_the_ensemble_is_the_mean_of_its_members_probabilities(tmp_path):
    paths = _members(tmp_path)
    stack = torch.rand(5, 3, 64, 80)
    singles = [SegmentationPredictor(p, device="cpu").probabilities(stack) for p in paths]
    plain = EnsemblePredictor(paths, device="cpu", flips=False, batch_slices=2)
    assert torch.allclose(plain.probabilities(stack), torch.stack(singles).mean(0), atol=1e-6)
    flipped = []
    for p in paths:
        single = SegmentationPredictor(p, device="cpu")
        flipped += [single.probabilities(stack), single.probabilities(stack.flip(3)).flip(3)]
        flipped.append(single.probabilities(stack.flip(2)).flip(2))
    both = EnsemblePredictor(paths, device="cpu", flips=True)
    assert torch.allclose(both.probabilities(stack), torch.stack(flipped).mean(0), atol=1e-6)
    assert not torch.allclose(both.probabilities(stack), plain.probabilities(stack), atol=1e-4)


def test_the_ensemble_segments_a_frame_on_its_own_grid(tmp_path):
    image = make_phantom(3, with_cine=False).ed_image
    labels = EnsemblePredictor(_members(tmp_path, 2), device="cpu").segment(image)
    assert labels.shape == image.GetSize()[::-1] and labels.dtype.name == "uint8"


def test_members_with_other_inputs_or_none_are_refused(tmp_path):
    paths = _members(tmp_path, 2)
    (tmp_path / "other").mkdir()
    other = _members(tmp_path / "other", 1, pre=PreprocessConfig(neighbour_slices=1, spacing_mm=1.25))
    with pytest.raises(CMRAssistError, match="must share them"):
        EnsemblePredictor(paths + other, device="cpu")
    with pytest.raises(CMRAssistError, match="at least one model"):
        EnsemblePredictor([], device="cpu")


def test_on_the_cpu_each_member_runs_through_its_own_engine_with_pytorchs_probabilities(tmp_path):
    paths = _members(tmp_path, 2)
    engines = EnsemblePredictor(paths, device="cpu")
    reference = EnsemblePredictor(paths, device="cpu", engine="torch")
    assert all(e is not None for e in engines.engines) and reference.engines == [None, None]
    assert all(OpenVinoEngine(engine_path(p)).source_sha256 == file_sha256(p) for p in paths)  # each its own export
    stack = torch.rand(4, 3, 64, 80)
    assert float((engines.probabilities(stack) - reference.probabilities(stack)).abs().max()) < 5e-4

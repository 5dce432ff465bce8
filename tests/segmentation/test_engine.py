"""The CPU inference engine (OpenVINO) against the PyTorch model it was exported from, with the shipped weights:
probabilities within the stated tolerance and the same labels on phantoms and scanner-geometry frames; an export
made from other weights, or damaged, is never used; the shipped export is installed and used as shipped."""

import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from cmrassist_server.core.checkpoints import file_sha256
from cmrassist_server.imaging.imageio import Orientation, frames_of
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.release.shipped import install_shipped, shipped_folder
from cmrassist_server.segmentation.engine import OpenVinoEngine, engine_path
from cmrassist_server.segmentation.predictor import SegmentationPredictor

#: The stated tolerance: largest difference of a class probability between the engine and PyTorch.
PROBABILITY_TOLERANCE = 5e-4
SHIPPED = os.path.join(shipped_folder(), "segmentation.pt")


def _scanner_geometry(image: sitk.Image) -> sitk.Image:
    """The frame as a scanner writes a short-axis stack: oblique axes, a far origin, 1.37 mm pixels, 8 mm slices."""
    out = sitk.Image(image)
    angle = np.deg2rad(35)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    out.SetDirection(tuple(rotation.ravel()))
    out.SetOrigin((-120.5, 87.25, 40.0))
    out.SetSpacing((1.37, 1.37, 8.0))
    return out


def _frames():
    phantoms = [make_phantom(seed, with_cine=False) for seed in (3, 17)]
    frames = [p.ed_image for p in phantoms] + [p.es_image for p in phantoms]
    return frames + [_scanner_geometry(f) for f in frames[:2]]


@pytest.fixture(scope="module")
def predictors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine")
    checkpoint = str(folder / "segmentation.pt")
    shutil.copyfile(SHIPPED, checkpoint)
    engine = SegmentationPredictor(checkpoint, device="cpu")
    return engine, SegmentationPredictor(checkpoint, device="cpu", engine="torch"), checkpoint


def test_the_engine_gives_the_pytorch_models_probabilities_and_labels(predictors):
    engine, torch_path, checkpoint = predictors
    assert engine.engine is not None and torch_path.engine is None
    assert OpenVinoEngine(engine_path(checkpoint)).source_sha256 == file_sha256(checkpoint)
    for image in _frames():
        frame = frames_of(image)[0]
        stack, _ = engine.preprocessor.inference_input(frame, Orientation.of(image), prior=None)
        fast, reference = engine.probabilities(stack), torch_path.probabilities(stack)
        assert float((fast - reference).abs().max()) < PROBABILITY_TOLERANCE
        # The network's labels are the same wherever PyTorch's own decision is not a tie within the tolerance.
        top2 = reference.topk(2, dim=1).values
        decided = (top2[:, 0] - top2[:, 1]) > 2 * PROBABILITY_TOLERANCE
        assert bool((fast.argmax(1) == reference.argmax(1))[decided].all())
        # Back on the image grid, resampling makes new near-ties: at most one heart voxel in 500 labelled otherwise.
        labels, reference_labels = engine.segment(image), torch_path.segment(image)
        assert int((labels != reference_labels).sum()) <= int((reference_labels > 0).sum()) // 500


def test_an_export_of_other_weights_or_a_damaged_one_is_replaced_not_used(predictors, tmp_path):
    _, torch_path, checkpoint = predictors
    folder_checkpoint = str(tmp_path / "segmentation.pt")
    shutil.copyfile(checkpoint, folder_checkpoint)
    with open(engine_path(folder_checkpoint), "wb") as f:
        f.write(b"not an onnx file")  # damaged
    assert SegmentationPredictor(folder_checkpoint, device="cpu").engine.source_sha256 == file_sha256(checkpoint)
    # An export whose metadata names other weights (a site retrained the model): exported again from these.
    with open(folder_checkpoint, "ab") as f:
        f.write(b"\0")  # other bytes, same weights: a different SHA-256
    stale = OpenVinoEngine(engine_path(folder_checkpoint)).source_sha256
    fresh = SegmentationPredictor(folder_checkpoint, device="cpu")
    assert stale != file_sha256(folder_checkpoint) == fresh.engine.source_sha256
    image = _frames()[0]
    assert np.array_equal(fresh.segment(image), torch_path.segment(image))


def test_the_shipped_export_is_installed_and_used_as_shipped(tmp_path):
    model_dir = str(tmp_path / "model")
    assert install_shipped(model_dir, shipped_folder())["segmentation"] == "installed"
    installed = engine_path(os.path.join(model_dir, "segmentation.pt"))
    assert file_sha256(installed) == file_sha256(engine_path(SHIPPED))
    stamp = os.path.getmtime(installed)
    predictor = SegmentationPredictor(os.path.join(model_dir, "segmentation.pt"), device="cpu")
    assert predictor.engine.source_sha256 == file_sha256(SHIPPED)
    assert os.path.getmtime(installed) == stamp  # used as installed, not exported again

"""CAM prior: the map, where it comes from, and the same channel at training and inference time."""

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, crop_or_pad
from cmrassist_server.segmentation.cam_prior import CamPrior, mode_filter
from cmrassist_server.segmentation.cam_training import prior_source, training_prior
from cmrassist_server.segmentation.data import prepare_cases
from cmrassist_server.segmentation.network import load_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation
from cmrassist_server.slice_position.network import PositionSpec, publish_position


@pytest.fixture(scope="module")
def grouped_items(tmp_path_factory):
    """Six phantom subjects (ED and ES), given two disease groups."""
    from monailabel.datastore.local import LocalDatastore

    from cmrassist_server.io.studies import phantom_studies, training_items

    folder = str(tmp_path_factory.mktemp("cam_studies"))
    phantom_studies(folder, 6, seed=60)
    items = training_items(LocalDatastore(folder, extensions=("*.nii.gz",), auto_reload=False))
    for it in items:  # phantoms have no disease; alternate subjects between two groups
        it["group"] = "DCM" if int(it["subject"][-1]) % 2 else "NOR"
    return items


def test_mode_filter_removes_speckle_and_keeps_blobs():
    levels = torch.zeros((1, 21, 21), dtype=torch.long)
    levels[0, 3, 3] = 7  # a lone speckle
    levels[0, 8:18, 8:18] = 5  # a blob
    out = mode_filter(levels, 8, 5)
    assert out[0, 3, 3] == 0
    assert bool((out[0, 10:16, 10:16] == 5).all()) and out[0, 0, 0] == 0
    assert out.shape == levels.shape


def test_prior_source_prefers_the_slice_position_model(grouped_items, tmp_path):
    one_group = [{**it, "group": "NOR"} for it in grouped_items]
    with pytest.raises(ValueError, match="slice-position model .* two disease groups") as err:
        prior_source(one_group, position_checkpoint=str(tmp_path / "none.pt"))
    assert err.value.status == 409
    assert prior_source(grouped_items, position_checkpoint=str(tmp_path / "none.pt")) == "disease_group"
    position = str(tmp_path / "slice_position.pt")
    torch.manual_seed(0)
    publish_position(position, PositionSpec().build(), ModelRecord(kind="slice_position", metric="macro_f1"))
    assert prior_source(one_group, position_checkpoint=position) == "slice_position"
    prior = training_prior(
        one_group, position_checkpoint=position, group_checkpoint=str(tmp_path / "g.pt"), device="cpu", seed=0
    )
    assert prior.source == "slice_position" and prior.target_class == "in_lv"
    assert not os.path.exists(tmp_path / "g.pt")  # no group classifier needed


@pytest.mark.slow
def test_cam_channel_has_the_stack_shape_and_is_the_same_at_train_and_infer(grouped_items, tmp_path):
    group_checkpoint = str(tmp_path / "cam_disease_group.pt")
    events = []
    prior = training_prior(
        grouped_items,
        position_checkpoint=str(tmp_path / "none.pt"),
        group_checkpoint=group_checkpoint,
        device="cpu",
        seed=0,
        group_epochs=4,
        log=lambda e, **f: events.append((e, f)),
    )
    assert prior.source == "disease_group" and prior.model.spec.classes == ("DCM", "NOR")
    assert os.path.isfile(group_checkpoint) and events[0][1]["training"] is True

    pre = CardiacPreprocessor()
    item = grouped_items[0]
    case = prepare_cases("k", item["subject"], item["image"], item["label"], pre, prior=prior)[0]
    assert case.inputs.shape == (case.image.shape[0], 2) + case.image.shape[1:]
    channel = case.inputs[:, 1]
    assert channel.dtype == np.float32 and channel.min() >= 0 and channel.max() <= 1 and channel.std() > 0.01
    np.testing.assert_array_equal(case.inputs[:, 0], case.image)
    # Computing it again gives the same map (no randomness in the prior).
    np.testing.assert_array_equal(prior.channel(case.image, pre.config.spacing_mm), channel)

    checkpoint = str(tmp_path / "segmentation.pt")
    result = train_segmentation(
        grouped_items,
        checkpoint,
        SegmentationTrainOptions(max_epochs=1, cam_prior=True, device="cpu", seed=0),
        prior=prior,
        log=lambda *a, **f: None,
    )
    assert result.published
    record = json.load(open(checkpoint[:-3] + ".json"))
    assert record["details"]["network"]["in_channels"] == 2 and record["options"]["cam_prior"] is True
    assert record["details"]["prior"]["source"] == "disease_group" and record["details"]["prior"]["classes"] == [
        "DCM",
        "NOR",
    ]

    # The classifier lives inside the checkpoint: retraining or deleting the group classifier changes nothing.
    os.remove(group_checkpoint)
    predictor = SegmentationPredictor(checkpoint, device="cpu")
    assert predictor.prior is not None and predictor.prior.source == "disease_group"
    image = sitk.ReadImage(item["image"])
    window, ctx = predictor.preprocessor.inference_input(
        sitk.GetArrayFromImage(image), Orientation.of(image), prior=predictor.prior
    )
    assert window.shape[1] == 2
    expected, box = crop_or_pad(
        case.inputs,
        ((ctx.resampled_hw[0] - 1) / 2 + 0.5, (ctx.resampled_hw[1] - 1) / 2 + 0.5),
        tuple(window.shape[-2:]),
    )
    assert box == ctx.box
    np.testing.assert_array_equal(window.numpy(), expected)  # the image and the CAM channel training saw
    labels = predictor.segment(image)
    assert labels.shape == sitk.GetArrayFromImage(image).shape

    # A model without a prior keeps one input channel and no prior.
    plain = str(tmp_path / "plain.pt")
    train_segmentation(
        grouped_items, plain, SegmentationTrainOptions(max_epochs=1, device="cpu"), log=lambda *a, **f: None
    )
    assert load_segmentation(plain).prior is None and SegmentationPredictor(plain, device="cpu").spec.in_channels == 1


def test_cam_option_and_prior_must_agree(grouped_items, tmp_path):
    with pytest.raises(ValueError, match="cam_prior"):
        train_segmentation(
            grouped_items, str(tmp_path / "s.pt"), SegmentationTrainOptions(max_epochs=1, cam_prior=True)
        )
    assert SegmentationTrainOptions.from_request({"cam_prior": "true"}).cam_prior is True
    with pytest.raises(ValueError, match="cam_prior"):
        SegmentationTrainOptions.from_request({"cam_prior": "maybe"})


def test_state_round_trip_gives_the_same_map(grouped_items, tmp_path):
    torch.manual_seed(3)
    prior = CamPrior(PositionSpec().build(), source="slice_position", target_class="in_lv")
    copy = CamPrior.from_state(prior.state())
    stack = CardiacPreprocessor().resampled_stack(*_frame(grouped_items[1]["image"]))[0]
    np.testing.assert_array_equal(prior.channel(stack, 1.5), copy.channel(stack, 1.5))
    with pytest.raises(ValueError, match="CAM source"):
        CamPrior(PositionSpec().build(), source="age", target_class=None)


def _frame(path):
    image = sitk.ReadImage(path)
    return sitk.GetArrayFromImage(image), Orientation.of(image)

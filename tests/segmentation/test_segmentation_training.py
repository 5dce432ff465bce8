"""Training engine: publishing only whole, better checkpoints; option checks; splits by subject."""

import hashlib
import os

import pytest
import SimpleITK as sitk

from cmrassist_server.core.checkpoints import read_record
from cmrassist_server.core.splits import split_subjects
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.segmentation.network import load_segmentation
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation


@pytest.fixture()
def items(phantom_frame_items):
    return phantom_frame_items


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_run_publishes_checkpoint_with_record_and_history(items, tmp_path):
    ckpt = str(tmp_path / "segmentation.pt")
    events = []
    result = train_segmentation(
        items,
        ckpt,
        SegmentationTrainOptions(max_epochs=2, max_minutes=2, batch_size=8),
        log=lambda e, **f: events.append(e),
    )
    assert result.published and os.path.isfile(ckpt)
    model = load_segmentation(ckpt)
    spec, record = model.spec, model.record
    assert spec.name == "unet" and record["epochs"] >= 1 and record["val_size"] == 2
    assert read_record(ckpt)["val"] == record["val"]
    assert events[0] == "loading" and events[-1] == "done" and events.count("epoch") == 2
    assert os.path.isfile(str(tmp_path / "segmentation.history.json"))
    assert not [f for f in os.listdir(tmp_path) if f.startswith("partial-")]


def test_crash_mid_training_leaves_the_served_model_as_it_was(items, tmp_path):
    ckpt = str(tmp_path / "segmentation.pt")
    train_segmentation(
        items, ckpt, SegmentationTrainOptions(max_epochs=1, max_minutes=2, batch_size=8), log=lambda e, **f: None
    )
    before = digest(ckpt)

    def crash(event, **fields):
        if event == "start":
            raise RuntimeError("simulated crash (out of memory, killed, ...)")

    with pytest.raises(RuntimeError):
        train_segmentation(items, ckpt, SegmentationTrainOptions(max_epochs=3, max_minutes=2, batch_size=8), log=crash)
    assert digest(ckpt) == before
    load_segmentation(ckpt)  # still loadable


def test_a_run_worse_than_the_served_model_publishes_nothing(items, tmp_path):
    ckpt = str(tmp_path / "segmentation.pt")
    train_segmentation(
        items, ckpt, SegmentationTrainOptions(max_epochs=3, max_minutes=2, batch_size=8), log=lambda e, **f: None
    )
    before = digest(ckpt)
    # Learning rate 0 cannot improve the served weights: nothing may be published.
    result = train_segmentation(
        items,
        ckpt,
        SegmentationTrainOptions(max_epochs=1, max_minutes=2, batch_size=8, learning_rate=0.0),
        log=lambda e, **f: None,
    )
    assert not result.published and digest(ckpt) == before


def test_options_are_validated_with_readable_messages():
    assert SegmentationTrainOptions.from_request({"max_epochs": "3", "from_scratch": "true"}).max_epochs == 3
    for bad in ({"max_epochs": 0}, {"val_split": 1}, {"device": "tpu"}, {"network": "vgg"}, {"max_minutes": "soon"}):
        with pytest.raises(ValueError):
            SegmentationTrainOptions.from_request(bad)


def test_split_keeps_subjects_whole_and_every_group_in_both_parts():
    subjects = [f"p{i:02d}" for i in range(10)]
    groups = {s: ("A" if i < 5 else "B") for i, s in enumerate(subjects)}
    train, val = split_subjects(subjects, groups, 0.2, seed=0)
    assert train.isdisjoint(val) and train | val == set(subjects)
    assert {groups[s] for s in val} == {"A", "B"} and {groups[s] for s in train} == {"A", "B"}
    with pytest.raises(ValueError):
        split_subjects(["only"], {}, 0.2, 0)


def test_attention_unet_is_selectable_and_segments_at_any_size():
    import torch

    from cmrassist_server.segmentation.network import NetworkSpec

    for name in ("unet", "attention_unet"):
        net = NetworkSpec(name=name).build().eval()
        with torch.no_grad():
            assert net(torch.zeros(2, 1, 96, 112)).shape == (2, 4, 96, 112)


def test_a_cine_label_trains_on_its_labelled_frames_and_a_3d_label_on_a_cine_is_skipped(tmp_path):
    import numpy as np

    from cmrassist_server.imaging.preprocess import CardiacPreprocessor
    from cmrassist_server.segmentation.data import prepare_cases

    p = make_phantom(8, n_frames=5)
    cine = str(tmp_path / "cine.nii.gz")
    sitk.WriteImage(p.cine, cine)
    ed, es = p.info["ed_frame"] - 1, p.info["es_frame"] - 1
    labels = np.zeros((5,) + sitk.GetArrayFromImage(p.ed_label).shape, np.uint8)
    labels[ed], labels[es] = sitk.GetArrayFromImage(p.ed_label), sitk.GetArrayFromImage(p.es_label)
    label4d = sitk.JoinSeries([sitk.GetImageFromArray(f) for f in labels])
    label4d.CopyInformation(p.cine)
    sitk.WriteImage(label4d, str(tmp_path / "cine_label.nii.gz"))
    sitk.WriteImage(p.ed_label, str(tmp_path / "ed_label.nii.gz"))
    pre = CardiacPreprocessor()
    cases = prepare_cases("cine", "s", cine, str(tmp_path / "cine_label.nii.gz"), pre)
    assert [c.key for c in cases] == [f"cine#frame{ed + 1}", f"cine#frame{es + 1}"]
    ed_image = str(tmp_path / "ed.nii.gz")
    sitk.WriteImage(p.ed_image, ed_image)
    (reference,) = prepare_cases("ed", "s", ed_image, str(tmp_path / "ed_label.nii.gz"), pre)
    assert np.array_equal(cases[0].label, reference.label) and np.allclose(cases[0].image, reference.image)
    assert prepare_cases("cine", "s", cine, str(tmp_path / "ed_label.nii.gz"), pre) == []

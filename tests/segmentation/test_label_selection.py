"""Training choices: option checks, the MAE+Dice loss, and which labels (versions, propagated) a run learns from."""

import os

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from cmrassist_server.segmentation.losses import MAEDiceLoss, segmentation_loss
from cmrassist_server.segmentation.training import SegmentationTrainOptions


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"loss": "focal"}, "loss must be one of"),
        ({"labels": "students"}, "labels must be one of"),
        ({"expert_weight": -1}, "expert_weight=-1: Input should be greater than or equal to 0"),
        ({"expert_weight": 0, "non_expert_weight": 0}, "not both 0"),
        ({"propagated": "yes", "propagated_weight": "x"}, "invalid train option"),
    ],
)
def test_bad_training_choices_are_refused_with_a_reason(bad, message):
    with pytest.raises(ValueError, match=message):
        SegmentationTrainOptions.from_request(bad)


def test_training_choices_parse():
    opts = SegmentationTrainOptions.from_request(
        {"loss": "mae_dice", "labels": "all", "non_expert_weight": "0.5", "propagated": "true"}
    )
    assert (opts.loss, opts.labels, opts.non_expert_weight, opts.propagated) == ("mae_dice", "all", 0.5, True)


def test_mae_dice_is_bounded_where_cross_entropy_is_not():
    """A confidently mislabelled pixel: CE's gradient stays large, MAE's vanishes (why it tolerates label noise)."""
    target = torch.zeros((1, 1, 4, 4), dtype=torch.long)
    target[0, 0, :2] = 1
    logits = torch.zeros((1, 2, 4, 4))
    logits[:, 1][target[:, 0] == 1] = 8.0
    logits[:, 0][target[:, 0] == 0] = 8.0
    noisy = target.clone()
    noisy[0, 0, 3, 3] = 1  # one wrong label on a pixel the network is sure about
    grads = {}
    for name in ("ce_dice", "mae_dice"):
        x = logits.clone().requires_grad_(True)
        segmentation_loss(name)(x, noisy).backward()
        grads[name] = float(x.grad[0, :, 3, 3].abs().max())
    assert grads["mae_dice"] < 0.1 * grads["ce_dice"]
    perfect = MAEDiceLoss()(logits, target)
    assert float(perfect) < 0.01 and float(MAEDiceLoss()(logits, noisy)) > float(perfect)
    with pytest.raises(ValueError):
        segmentation_loss("l2")


def test_label_choices_pick_versions_by_expertise(tmp_path):
    from cmrassist_server.annotations.versions import LabelVersions
    from cmrassist_server.imaging.imageio import write_label_like
    from cmrassist_server.io.datastore import CheckedDatastore
    from cmrassist_server.io.studies import phantom_studies
    from cmrassist_server.segmentation.label_selection import selected_items

    folder = str(tmp_path / "studies")
    phantom_studies(folder, 2, seed=77)
    ds = CheckedDatastore(
        folder, versions=LabelVersions(os.path.join(folder, ".cmrassist", "versions")), extensions=("*.nii.gz",)
    )
    final = str(tmp_path / "submitted.nii.gz")
    sitk.WriteImage(sitk.ReadImage(os.path.join(folder, "labels", "final", "phantom077_ed.nii.gz")), final)
    ds.save_label("phantom077_ed", final, "final", {"annotator": "Ms B", "expertise": "non-expert"})
    ds.save_label("phantom077_ed", final, "final", {"annotator": "Dr A", "expertise": "expert"})

    def chosen(**params):
        items, finals = selected_items(ds, SegmentationTrainOptions.from_request(params))
        return sorted(
            (os.path.basename(it["image"]).split(".")[0], it.get("version"), it.get("weight")) for it in items
        ), finals

    items, finals = chosen()
    assert len(items) == len(finals) == 4 and all(v is None for _, v, _ in items)
    items, _ = chosen(labels="non_expert", non_expert_weight=0.5)
    assert items == [("phantom077_ed", "ms-b", 0.5)]
    # Experts: Dr A's and the generator's labels (kept as version one where versions exist, the final elsewhere).
    items, _ = chosen(labels="expert")
    assert items == [
        ("phantom077_ed", "dr-a", 1.0),
        ("phantom077_ed", "phantom-generator", 1.0),
        ("phantom077_es", "phantom-generator", 1.0),
        ("phantom078_ed", "phantom-generator", 1.0),
        ("phantom078_es", "phantom-generator", 1.0),
    ]
    items, _ = chosen(labels="all", non_expert_weight=0.25)
    assert [w for _, v, w in items if v == "ms-b"] == [0.25] and len(items) == 6
    with pytest.raises(ValueError, match="no labels match"):
        chosen(labels="consensus")
    # A cine's propagated label joins when asked for.
    phantom_studies(folder, 1, seed=79, with_cine=True)
    ds = CheckedDatastore(
        folder, versions=LabelVersions(os.path.join(folder, ".cmrassist", "versions")), extensions=("*.nii.gz",)
    )
    cine = sitk.ReadImage(os.path.join(folder, "phantom079_cine.nii.gz"))
    path = write_label_like(
        np.zeros(tuple(reversed(cine.GetSize())), np.uint8), cine, str(tmp_path / "propagated.nii.gz")
    )
    ds.save_label("phantom079_cine", path, "propagated", {"model": "propagate"})
    items, _ = chosen(propagated="true", propagated_weight=0.3)
    assert ("phantom079_cine", "propagated", 0.3) in items


@pytest.mark.slow
def test_records_and_model_versions_through_a_real_server(tmp_path):
    """Two short real trainings with different choices: each record says what it was trained with; the first can
    be served again."""
    from training_wait import wait_training

    from cmrassist_server.io.studies import phantom_studies
    from cmrassist_server.launcher import RunningServer
    from CMRAssistLib.client import CMRAssistClient, ServerError

    studies = str(tmp_path / "studies")
    phantom_studies(studies, 3, seed=12)
    srv = RunningServer(studies, str(tmp_path / "model"), str(tmp_path / "server.log"))
    try:
        client = CMRAssistClient(srv.url)
        with pytest.raises(ServerError) as bad:
            client.train_start("segmentation", loss="hinge")
        assert bad.value.status == 422 and "loss" in str(bad.value)
        with pytest.raises(ServerError) as bad:
            client.train_start("segmentation", cam_prior="maybe")
        assert bad.value.status == 422 and "cam_prior" in str(bad.value)
        with pytest.raises(ServerError) as refused:  # phantoms: one disease group, and no slice-position model
            client.train_start("segmentation", cam_prior=True)
        assert refused.value.status == 409 and "slice-position model" in str(refused.value)
        for loss, labels in (("mae_dice", "expert"), ("ce_dice", "all")):
            client.train_start("segmentation", max_epochs=1, max_minutes=2, loss=loss, labels=labels, from_scratch=True)
            status = wait_training(client)
            assert status.state == "DONE", status
            record = client.info()["models"]["segmentation"]["model_record"]
            assert record["options"]["loss"] == loss and record["options"]["labels"] == labels
        versions = client.model_versions("segmentation")
        assert len(versions) == 2 and [v["current"] for v in versions] == [False, True]
        assert versions[0]["record"]["options"]["loss"] == "mae_dice"
        client.make_model_current("segmentation", versions[0]["version"])
        assert client.info()["models"]["segmentation"]["model_record"]["options"]["loss"] == "mae_dice"
        assert [v["current"] for v in client.model_versions("segmentation")] == [True, False]
        for call in (
            lambda: client.make_model_current("segmentation", "../segmentation"),
            lambda: client.make_model_current("segmentation", "19990101-000000"),
            lambda: client.model_versions("nonsense"),
        ):
            with pytest.raises(ServerError) as refused:
                call()
            assert refused.value.status == 404
    finally:
        srv.stop()


def test_a_served_model_not_yet_archived_is_listed_and_kept_when_another_version_is_served(tmp_path):
    import json

    from cmrassist_server.core.model_versions import SERVED, archive, list_versions, make_current

    checkpoint = str(tmp_path / "segmentation.pt")

    def publish(text, loss):
        with open(checkpoint, "w") as f:
            f.write(text)
        with open(checkpoint[:-3] + ".json", "w") as f:
            json.dump({"options": {"loss": loss}, "trained_at": len(text)}, f)

    assert list_versions(checkpoint) == []
    publish("first", "ce_dice")
    first = archive(checkpoint)
    assert archive(checkpoint) == first  # the same model is not archived twice
    publish("second, from a run stopped before it archived", "mae_dice")
    listed = list_versions(checkpoint)
    assert [(v["version"], v["current"], v["archived"]) for v in listed] == [
        (first, False, True),
        (SERVED, True, False),
    ]
    make_current(checkpoint, first)
    listed = list_versions(checkpoint)
    assert len(listed) == 2 and all(v["archived"] for v in listed) and listed[0]["current"]
    assert listed[1]["record"]["options"]["loss"] == "mae_dice"  # the stopped run's model was kept
    assert open(checkpoint).read() == "first"


def test_the_ce_loss_is_cross_entropy_on_the_loops_label_shape():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 1, 8, 8))
    expected = torch.nn.functional.cross_entropy(logits, target[:, 0])
    assert torch.allclose(segmentation_loss("ce")(logits, target), expected)
    assert SegmentationTrainOptions.from_request({"loss": "ce"}).loss == "ce"

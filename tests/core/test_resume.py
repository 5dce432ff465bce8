"""A stopped training run continues from its saved state exactly as if it had never stopped (weights, optimiser,
schedule, every random state, epoch): the 2.5D segmentation recipe on phantoms, stopped after an epoch."""

import contextlib
import os

import pytest
import torch

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.resume import load_state
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.segmentation.network import NetworkSpec, load_segmentation
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation


class Stopped(Exception):
    """What a killed run looks like to the loop: nothing after the event that raised it."""


@pytest.fixture()
def items(phantom_frame_items):
    return phantom_frame_items


def _train(items, folder, *, stop_after=None, state=True):
    options = SegmentationTrainOptions(max_epochs=3, max_minutes=600, batch_size=4, seed=2, from_scratch=True)
    events = []

    def log(event, **fields):
        events.append((event, fields.get("epoch"), fields.get("resumed_at")))
        if event == "epoch" and fields["epoch"] == stop_after:
            raise Stopped

    ckpt, state_path = os.path.join(folder, "segmentation.pt"), os.path.join(folder, "state.pt")
    small = NetworkSpec(channels=(8, 16, 32), in_channels=3)
    preprocess = PreprocessConfig(neighbour_slices=1, patch_size=64)
    with contextlib.suppress(Stopped):
        kept = state_path if state else None
        train_segmentation(items, ckpt, options, log=log, state_path=kept, preprocess=preprocess, spec=small)
    return ckpt, state_path, events


def _weights(path):
    return load_segmentation(path).network.state_dict()


@pytest.mark.slow
def test_a_run_stopped_and_resumed_ends_with_the_weights_of_an_unbroken_run(items, tmp_path):
    unbroken, _, _ = _train(items, str(tmp_path / "unbroken"), state=False)
    folder = str(tmp_path / "stopped")
    ckpt, state_path, first = _train(items, folder, stop_after=1)
    assert [e for e in first if e[0] == "epoch"] == [("epoch", 1, None)] and load_state(state_path)["run"]["epoch"] == 1
    _, _, second = _train(items, folder)
    assert ("start", None, 1) in second and [e[1] for e in second if e[0] == "epoch"] == [2, 3]
    a, b = _weights(unbroken), _weights(ckpt)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    finished = load_state(state_path)
    assert finished["run"]["finished"] and len(finished["history"]) == 3
    _, _, third = _train(items, folder)  # a finished run resumed does no more work
    assert not [e for e in third if e[0] == "epoch"]


def test_a_damaged_state_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "state.pt"
    path.write_bytes(b"not a state")
    with pytest.raises(CMRAssistError, match="remove it to start over") as e:
        load_state(str(path))
    assert e.value.status == 409
    assert load_state(str(tmp_path / "none.pt")) is None

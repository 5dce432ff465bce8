"""The one training loop with a small recipe of its own: publish only what beats the served model, the budget
rule, the history file and the progress events every model reports."""

import json
import os
import time

import torch

from cmrassist_server.core import checkpoints
from cmrassist_server.core.checkpoints import ModelRecord, history_path
from cmrassist_server.core.options import TrainOptions
from cmrassist_server.core.training import TrainingRecipe, run_training
from CMRAssistCore.progress import parse_progress_line, progress_line


class LineFit(TrainingRecipe):
    """Fits y = 3x with one weight; validation error is the metric (lower is better)."""

    kind, metric, higher_is_better = "line", "error", False

    def __init__(self, checkpoint, *, step_seconds=0.0, steps=4):
        self.checkpoint, self.step_seconds, self.steps = checkpoint, step_seconds, steps
        self.x = torch.linspace(-1, 1, 32)[:, None]

    def prepare(self, device, log):
        log("loading", images=1)
        self.served = None
        if os.path.isfile(self.checkpoint):
            self.served = torch.nn.Linear(1, 1, bias=False)
            self.served.load_state_dict(checkpoints.load(self.checkpoint, kind="line").state_dict)

    def build(self):
        return torch.nn.Linear(1, 1, bias=False)

    def served_val(self):
        return self.validate(self.served) if self.served is not None else None

    def steps_per_epoch(self):
        return self.steps

    def batch(self):
        time.sleep(self.step_seconds)
        return self.x

    def loss(self, model, x):
        return torch.mean((model(x) - 3 * x) ** 2)

    @torch.no_grad()
    def validate(self, model):
        return {"error": float(torch.mean(torch.abs(model(self.x) - 3 * self.x)))}

    def publish(self, model, record):
        checkpoints.publish(self.checkpoint, model, record, spec={})


def test_a_run_publishes_its_best_epoch_writes_history_and_reports_every_event(tmp_path):
    path = str(tmp_path / "line.pt")
    events = []
    result = run_training(
        LineFit(path), TrainOptions(max_epochs=5, learning_rate=0.2), path, log=lambda e, **f: events.append((e, f))
    )
    assert result.published and result.epochs == 5 and result.served_val is None
    assert [e for e, _ in events] == ["loading", "start"] + ["epoch"] * 5 + ["done"]
    epochs = [f for e, f in events if e == "epoch"]
    for f in epochs:  # one schema: the same keys for every model
        assert {
            "model",
            "metric",
            "epoch",
            "max_epochs",
            "loss",
            "val",
            "best_val",
            "score",
            "best_score",
            "published",
            "elapsed_s",
            "max_minutes",
            "percent",
        } <= set(f)
        assert parse_progress_line(progress_line("epoch", **f))["best_score"] == f["best_score"]
    assert epochs[-1]["percent"] == 100.0 and epochs[-1]["best_score"] == min(f["score"] for f in epochs)
    record = checkpoints.load(path).record
    assert record["kind"] == "line" and record["score"] == result.best_val["error"]
    assert record["options"]["learning_rate"] == 0.2 and record["metric"] == "error"
    assert [h["epoch"] for h in json.load(open(history_path(path)))] == [1, 2, 3, 4, 5]


def test_a_worse_run_leaves_the_served_model_alone(tmp_path):
    path = str(tmp_path / "line.pt")
    run_training(LineFit(path), TrainOptions(max_epochs=8, learning_rate=0.2), path, log=lambda *a, **f: None)
    served = open(path, "rb").read()
    # Starting from scratch with a tiny learning rate cannot beat the served model on the same validation set.
    result = run_training(LineFit(path), TrainOptions(max_epochs=2, learning_rate=1e-6), path, log=lambda *a, **f: None)
    assert result.served_val is not None and not result.published
    assert open(path, "rb").read() == served


def test_the_budget_stops_mid_epoch_then_validates_and_publishes(tmp_path):
    path = str(tmp_path / "line.pt")
    options = TrainOptions(max_epochs=50, max_minutes=0.6 / 60, learning_rate=0.2)
    start = time.time()
    result = run_training(LineFit(path, step_seconds=0.1, steps=100), options, path, log=lambda *a, **f: None)
    assert time.time() - start < 5  # an epoch of 100 x 0.1 s was cut at the 0.6 s budget
    assert result.epochs == 1 and result.published and result.history[0]["percent"] == 100.0


def test_a_record_is_the_same_type_for_every_model():
    assert set(ModelRecord(kind="qc", metric="mae").__dict__) == {
        "kind",
        "metric",
        "val",
        "score",
        "epochs",
        "trained_at",
        "train_size",
        "val_size",
        "options",
        "details",
    }

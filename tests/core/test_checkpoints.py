"""The one checkpoint format: atomic publication, tensors-only loading, kinds, and the served-model cache."""

import json
import os
import pickle

import pytest
import torch

from cmrassist_server.core import checkpoints
from cmrassist_server.core.checkpoints import ModelRecord, ServedModel, read_record
from cmrassist_server.core.errors import CMRAssistError


def tiny():
    return torch.nn.Linear(3, 2)


def test_publish_writes_checkpoint_and_record_that_load_back(tmp_path):
    path = str(tmp_path / "m.pt")
    model = tiny()
    checkpoints.publish(
        path,
        model,
        ModelRecord(kind="qc", metric="mae", val={"mae": 0.1}, score=0.1),
        spec={"channels": (4, 8)},
        preprocess={"spacing_mm": 1.5},
    )
    loaded = checkpoints.load(path, kind="qc")
    assert loaded.kind == "qc" and loaded.spec["channels"] == (4, 8) and loaded.preprocess == {"spacing_mm": 1.5}
    assert torch.equal(loaded.state_dict["weight"], model.state_dict()["weight"])
    assert read_record(path)["val"] == {"mae": 0.1} == loaded.record["val"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith("partial-")]


def test_loading_refuses_code_foreign_files_and_other_kinds(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "owned"),))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"format": 1, "kind": "qc", "x": Payload()}, f)
    with pytest.raises(CMRAssistError, match="cannot be loaded") as refused:
        checkpoints.load(str(evil))
    assert refused.value.status == 409 and not (tmp_path / "owned").exists()  # weights_only: no code ran
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CMRAssistError, match="not a CMRAssist checkpoint"):
        checkpoints.load(str(foreign))
    path = str(tmp_path / "seg.pt")
    checkpoints.publish(path, tiny(), ModelRecord(kind="segmentation", metric="mean"), spec={})
    with pytest.raises(CMRAssistError, match="holds a 'segmentation' model, not 'qc'"):
        checkpoints.load(path, kind="qc")
    (tmp_path / "half.pt").write_bytes(open(path, "rb").read()[:100])
    with pytest.raises(CMRAssistError, match="cannot be loaded"):
        checkpoints.load(str(tmp_path / "half.pt"))


def test_the_served_model_reloads_only_when_the_file_is_replaced(tmp_path):
    path = str(tmp_path / "m.pt")
    loads = []

    def loader(p):
        loads.append(p)
        return checkpoints.load(p).record["score"]

    served = ServedModel(path, loader)
    assert served.get() is None and served.record() is None and not served.exists()
    checkpoints.publish(path, tiny(), ModelRecord(kind="qc", metric="mae", score=0.3), spec={})
    assert served.get() == 0.3 and served.get() == 0.3 and len(loads) == 1
    checkpoints.publish(path, tiny(), ModelRecord(kind="qc", metric="mae", score=0.2), spec={})
    assert served.get() == 0.2 and len(loads) == 2 and served.record()["score"] == 0.2
    assert json.load(open(str(tmp_path / "m.json")))["kind"] == "qc"

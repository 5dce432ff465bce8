"""One schema layer (issue 21): each infer task's params, the train options and the app settings are pydantic
schemas. Train options are checked by FastAPI before the route's handler runs and published in the OpenAPI schema;
infer params are checked against the task's schema before the task runs; each refusal names the field (422)."""

import json

import pytest
import requests
from test_hostile_input import IMAGE, open_server  # noqa: F401 (the module's own server)

from cmrassist_server.api.infer_params import (
    PositionParams,
    PropagateParams,
    QCParams,
    SegmentationParams,
    checked_params,
)
from cmrassist_server.core.errors import CMRAssistError


def task(schema):
    """An infer task as ``api/infer`` sees it: what matters is the schema it names (``lib/infers`` set theirs)."""
    return type("Task", (), {"PARAMS": schema})


SegmentationInferTask, QCInferTask = task(SegmentationParams), task(QCParams)
PositionInferTask, PropagateInferTask = task(PositionParams), task(PropagateParams)


@pytest.mark.parametrize(
    "infer_task, params, words",
    [
        (SegmentationInferTask, {"outside_lv": "drop"}, "outside_lv='drop': Input should be 'keep' or 'empty'"),
        (SegmentationInferTask, {"save_label": "perhaps"}, "save_label='perhaps': Input should be a valid boolean"),
        (SegmentationInferTask, {"device": "tpu"}, "device='tpu'"),
        (QCInferTask, {"threshold": {"lv": 0.5}}, "threshold"),
        (QCInferTask, {"threshold": 1.5}, "a Dice threshold lies between 0 and 1"),
        (QCInferTask, {"threshold": float("nan")}, "threshold"),
        (PositionInferTask, {"frame": 0}, "frame=0: Input should be greater than or equal to 1"),
        (PositionInferTask, {"frame": "2.5"}, "frame='2.5': Input should be a valid integer"),
        (PropagateInferTask, {"store": "maybe"}, "store='maybe': Input should be a valid boolean"),
        (PropagateInferTask, {"source": "x" * 300}, "source="),
    ],
)
def test_infer_params_are_checked_against_the_tasks_schema(infer_task, params, words):
    with pytest.raises(CMRAssistError) as refused:
        checked_params(infer_task, params)
    assert refused.value.status == 422 and words in str(refused.value)


def test_checked_infer_params_are_typed_and_the_clients_own_keys_pass_through():
    checked = checked_params(PropagateInferTask, {"store": "yes", "client_id": "slicer", "result_extension": ".nrrd"})
    assert checked == {"store": True, "client_id": "slicer", "result_extension": ".nrrd"}
    assert checked_params(PositionInferTask, {"frame": "3"}) == {"frame": 3}


def test_train_options_are_published_and_checked_before_the_handler(open_server):  # noqa: F811
    schema = requests.get(open_server.url + "/openapi.json", timeout=60).json()
    body = schema["paths"]["/train/segmentation"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ref = json.dumps(body).split('"#/components/schemas/')[1].split('"')[0]
    fields = schema["components"]["schemas"][ref]["properties"]
    assert fields["max_epochs"]["maximum"] == 100000 and fields["loss"]["enum"] == ["ce_dice", "mae_dice", "ce"]
    answer = requests.post(open_server.url + "/train/segmentation", json={"max_epochs": 0, "loss": "l2"}, timeout=60)
    assert answer.status_code == 422
    problems = {".".join(map(str, d["loc"])): d["msg"] for d in answer.json()["detail"]}
    assert "body.max_epochs" in problems and "loss must be one of" in json.dumps(answer.json())


def test_an_infer_param_of_the_wrong_type_is_refused_before_the_task_runs(open_server):  # noqa: F811
    params = {"params": json.dumps({"outside_lv": 3})}
    answer = requests.post(open_server.url + "/infer/segmentation", params={"image": IMAGE}, data=params, timeout=60)
    assert answer.status_code == 422 and "outside_lv=3" in answer.text

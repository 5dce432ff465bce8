"""The one train-option parser: types, ranges, choices, unknown keys, and what /info/ advertises."""

import pytest

from cmrassist_server.core.conf import AppConf
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.options import TrainOptions, parse_bool
from cmrassist_server.qc.training import QCTrainOptions
from cmrassist_server.segmentation.training import SegmentationTrainOptions
from cmrassist_server.slice_position.training import PositionTrainOptions


@pytest.mark.parametrize("options_type", [SegmentationTrainOptions, QCTrainOptions, PositionTrainOptions])
@pytest.mark.parametrize(
    "bad, words",
    [
        ({"max_epochs": 1e12}, "max_epochs=1000000000000.0: Input should be less than or equal to 100000"),
        ({"max_epochs": "2.5"}, "valid integer"),
        ({"max_minutes": "nan"}, "finite number"),
        ({"max_minutes": "inf"}, "finite number"),
        ({"max_minutes": 0}, "max_minutes=0: Input should be greater than 0"),
        ({"learning_rate": "-1"}, "learning_rate='-1': Input should be greater than or equal to 0"),
        ({"learning_rate": "nan"}, "finite number"),
        ({"batch_size": 1e9}, "batch_size=1000000000.0: Input should be less than or equal to 1024"),
        ({"val_split": 1}, "val_split=1: Input should be less than or equal to 0.9"),
        ({"from_scratch": "maybe"}, "true or false expected"),
        ({"seed": True}, "seed=True: a number expected"),
        ({"device": "tpu"}, "device must be one of"),
        ({"epochs": 3}, "unknown train option 'epochs'"),
    ],
)
def test_every_model_refuses_bad_values_with_a_reason(options_type, bad, words):
    with pytest.raises(CMRAssistError) as refused:
        options_type.from_request(bad)
    assert refused.value.status == 422 and words in str(refused.value)


def test_values_are_converted_and_defaults_kept():
    opts = SegmentationTrainOptions.from_request(
        {
            "max_epochs": "3",
            "from_scratch": "yes",
            "loss": "mae_dice",
            "model": "segmentation",
            "gpus": "all",
            "local_rank": 0,
        }
    )
    assert (opts.max_epochs, opts.from_scratch, opts.loss, opts.network) == (3, True, "mae_dice", "unet")
    assert QCTrainOptions.from_request({}).batch_size == 32 and PositionTrainOptions.from_request({}).max_minutes == 5.0


def test_advertised_options_list_choices_with_the_default_first():
    config = SegmentationTrainOptions.advertised({"network": "attention_unet", "max_minutes": 30.0})
    assert config["network"] == ["attention_unet", "unet"] and config["max_minutes"] == 30.0
    assert config["loss"] == ["ce_dice", "mae_dice", "ce"] and config["labels"][0] == "final"
    assert config["cam_prior"] is False and config["device"] == "cuda or cpu (auto)"
    assert set(TrainOptions.advertised()) < set(config)


@pytest.mark.parametrize("word, value", [("true", True), ("ON", True), (" 1 ", True), ("no", False), (False, False)])
def test_one_boolean_parser(word, value):
    assert parse_bool(word) is value


def test_the_boolean_parser_refuses_other_words():
    with pytest.raises(CMRAssistError, match="true or false expected"):
        parse_bool("perhaps", "store")


@pytest.mark.parametrize(
    "setting, words",
    [
        ({"qc_threshold": "nan"}, "qc_threshold='nan': Input should be a finite number"),
        ({"qc_threshold": "1.5"}, "qc_threshold='1.5': Input should be less than or equal to 1"),
        ({"network": "vnet"}, "network='vnet': Input should be 'unet' or 'attention_unet'"),
        ({"max_voxels": "1e3"}, "max_voxels='1e3': Input should be a valid integer"),
        ({"train_max_minutes": "0"}, "train_max_minutes='0': Input should be greater than 0"),
    ],
)
def test_app_settings_out_of_range_stop_the_server_with_the_setting_named(setting, words):
    with pytest.raises(CMRAssistError) as refused:
        AppConf.parse(setting, "/nonexistent")
    assert words in str(refused.value)


def test_app_settings_are_typed_and_unknown_keys_left_to_monai_label():
    conf = AppConf.parse({"qc_threshold": "0.5", "max_voxels": "1000", "models": "all"}, "/apps/cmr")
    assert (conf.qc_threshold, conf.max_voxels, conf.model_dir) == (0.5, 1000, "/apps/cmr/model")

"""Infrastructure every capability uses: settings, train options, the one training loop, checkpoints and
model versions, errors, the compute device.
"""

from cmrassist_server.core.checkpoints import (
    Checkpoint,
    ModelRecord,
    ServedModel,
    atomic_write,
    load,
    publish,
    read_record,
)
from cmrassist_server.core.conf import AppConf
from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.ids import check_id
from cmrassist_server.core.model_versions import archive, list_versions, make_current
from cmrassist_server.core.options import TrainOptions, option, parse_bool
from cmrassist_server.core.splits import split_subjects
from cmrassist_server.core.training import TrainingRecipe, TrainResult, report, run_training

__all__ = [
    "AppConf",
    "CMRAssistError",
    "Checkpoint",
    "ModelRecord",
    "ServedModel",
    "TrainOptions",
    "TrainResult",
    "TrainingRecipe",
    "archive",
    "atomic_write",
    "check_id",
    "default_device",
    "list_versions",
    "load",
    "make_current",
    "option",
    "parse_bool",
    "publish",
    "read_record",
    "report",
    "run_training",
    "split_subjects",
]

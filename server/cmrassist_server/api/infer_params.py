"""The params of each infer task as a pydantic schema, checked before any task runs (``api/infer.py``).

An infer task names its schema in ``PARAMS`` (``lib/infers``); the params MONAI Label clients add of their own
(``label_info``, ``client_id``, ``result_*``) pass through untouched, while every param a task reads is typed,
ranged and refused with the param named (422) when wrong.
"""

from typing import Any, Dict, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cmrassist_server.core.errors import CMRAssistError

#: The classes a QC threshold may name.
QC_CLASSES = ("lv_cavity", "lv_myocardium", "rv_cavity")


class InferParams(BaseModel):
    """What every infer request may carry.

    Args:
        save_label: store the prediction as the study's label under a machine tag (annotators only).
        label_tag: that machine tag.
        device: ``auto``, ``cpu`` or ``cuda``.
        cine_frame: run on this frame (1-based) of the stored cine ``image``, as its frame study
            ``<cine>_frameNN`` (made on the server: nothing is uploaded).
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    save_label: bool = False
    label_tag: Optional[str] = Field(None, max_length=64)
    device: Optional[Literal["auto", "cpu", "cuda"]] = None
    cine_frame: Optional[int] = Field(None, ge=1, le=10000)


class SegmentationParams(InferParams):
    """``outside_lv``: ``keep`` the slices outside the LV, or leave them ``empty``."""

    outside_lv: Literal["keep", "empty"] = "keep"


class QCParams(InferParams):
    """``label``: ``prediction`` or a label tag to check; ``threshold``: one Dice under which a slice is flagged,
    or one per class (``{"lv_cavity": 0.8, ...}``)."""

    label: Optional[str] = Field(None, max_length=64)
    threshold: Optional[Any] = None

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        per_class = value if isinstance(value, dict) else {"threshold": value}
        for name, number in per_class.items():
            if isinstance(value, dict) and name not in QC_CLASSES:
                raise ValueError(f"unknown class {name!r} in threshold; use {', '.join(QC_CLASSES)}")
            if isinstance(number, bool) or not isinstance(number, (int, float, str)):
                raise ValueError(f"threshold {number!r} is not a number")
            try:
                dice = float(number)
            except ValueError:
                raise ValueError(f"threshold {number!r} is not a number") from None
            if not 0 <= dice <= 1:  # NaN fails this too
                raise ValueError(f"threshold {number!r}: a Dice threshold lies between 0 and 1")
        return value


class PositionParams(InferParams):
    """``frame``: the cine frame whose slices are ranked (1-based)."""

    frame: Optional[int] = Field(None, ge=1, le=10000)


class PropagateParams(InferParams):
    """``source``: the labelled frame study (found by the server when omitted); ``store``: keep the result;
    ``through_plane``: check each propagated frame against the served segmentation model (off: registration alone,
    for a model that does not know these images yet)."""

    source: Optional[str] = Field(None, max_length=256)
    store: bool = False
    through_plane: bool = True


def checked_params(task: Any, values: Dict[str, Any]) -> Dict[str, Any]:
    """``values`` checked against the task's ``PARAMS`` schema; what was sent, typed (defaults are the task's).

    Raises:
        CMRAssistError (422): a param of the wrong type, out of range or not among its choices, named.
    """
    schema = getattr(task, "PARAMS", InferParams)
    try:
        checked = schema.model_validate(values)
    except ValidationError as e:
        wrong = "; ".join(_line(x) for x in e.errors())
        raise CMRAssistError(wrong, 422) from None
    return checked.model_dump(exclude_unset=True)


def _line(error: Dict[str, Any]) -> str:
    name = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"invalid infer param {name}={error.get('input')!r}: {message}" if name else message

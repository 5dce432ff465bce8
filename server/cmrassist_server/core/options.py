"""Request params -> typed, checked options: one pydantic schema per train task, and the one boolean parser.

An option is a field made with :func:`option`: its default, its range or its choices live beside it, so pydantic
checks them (FastAPI before the route's handler runs: ``api/train.py``), the OpenAPI schema publishes them, and the
train task advertises them in ``GET /info/`` (MONAI Label's convention: a list is a choice whose first item is the
default).
"""

from typing import Any, ClassVar, Dict, Optional, Sequence, Type, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

T = TypeVar("T", bound="TrainOptions")


def parse_bool(value: Any, what: str = "value") -> bool:
    """``True``/``False`` from a bool or one of the words in :data:`TRUE_WORDS` / :data:`FALSE_WORDS`.

    Raises:
        CMRAssistError (422): anything else.
    """
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise CMRAssistError(f"invalid {what} {value!r}: true or false expected", 422)
    return word in TRUE_WORDS


def option(
    default: Any,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    choices: Optional[Sequence[str]] = None,
    open_low: bool = False,
) -> Any:
    """A train option: its default and, for numbers, the range ``[low, high]`` (``(low, high]`` with ``open_low``),
    or for words the allowed ``choices`` (published as the schema's ``enum``)."""
    bounds = {"gt" if open_low else "ge": low} if low is not None else {}
    extra = {"enum": list(choices)} if choices else None
    return Field(default, le=high, json_schema_extra=extra, **bounds)


def readable(error: ValidationError) -> str:
    """One line per refused field, naming it and its value (what a Train panel shows)."""
    lines = []
    for e in error.errors():
        if not e["loc"]:  # a check across options, or one made before the fields' own
            lines.append(e["msg"].removeprefix("Value error, "))
            continue
        name = ".".join(str(p) for p in e["loc"]) or "options"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown train option {name!r}")
        else:
            lines.append(f"invalid train option {name}={e.get('input')!r}: {e['msg']}")
    return "; ".join(lines)


class TrainOptions(BaseModel):
    """What every training run takes (request params of every train task; each task adds its own).

    Args:
        max_epochs: epochs at most.
        max_minutes: wall-clock budget of the training loop (data preparation is reported apart); the run stops at
            the first step past it, validates, and publishes the model if it is better.
        val_split: fraction of subjects held out for validation (at least one subject).
        device: ``cpu`` or ``cuda``; CUDA when present by default.
        batch_size: samples per step.
        learning_rate: initial AdamW learning rate (decays polynomially to 1% over the budget).
        from_scratch: ignore the served model's weights.
        seed: random seed of the split, the sampling and the augmentation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=False)

    max_epochs: int = option(50, low=1, high=100000)
    max_minutes: float = option(10.0, low=0, high=7 * 24 * 60, open_low=True)
    val_split: float = option(0.2, low=0, high=0.9, open_low=True)
    device: Optional[str] = option(None, choices=("cpu", "cuda"))
    batch_size: int = option(16, low=1, high=1024)
    learning_rate: float = option(2e-3, low=0, high=1.0)  # 0: a run that cannot beat the served model
    from_scratch: bool = option(False)
    seed: int = option(0, low=0, high=2**31 - 1)

    #: Request keys MONAI Label itself adds to a train request (not options).
    META_KEYS: ClassVar[frozenset] = frozenset({"model", "gpus", "local_rank", "bundle_path"})

    @model_validator(mode="before")
    @classmethod
    def _request(cls, values: Any) -> Any:
        """Drop MONAI Label's own keys; an empty value means the default; booleans by :func:`parse_bool`."""
        if not isinstance(values, dict):
            return values
        out = {}
        for key, value in values.items():
            field = cls.model_fields.get(key)
            if (
                key in cls.META_KEYS
                or value is None
                or (value == "" and field is not None and field.default is not None)
            ):
                continue
            if field is not None and field.annotation is bool and isinstance(value, str):
                value = parse_bool(value, f"train option {key}")
            if field is not None and field.annotation in (int, float) and isinstance(value, bool):
                raise ValueError(f"invalid train option {key}={value!r}: a number expected, not true or false")
            out[key] = value
        return out

    @field_validator("*")
    @classmethod
    def _choice(cls, value: Any, info: ValidationInfo) -> Any:
        """A word option must be one of its choices (each refused field reported on its own)."""
        choices = (cls.model_fields[info.field_name].json_schema_extra or {}).get("enum")
        if choices and value is not None and value not in choices:
            raise ValueError(f"{info.field_name} must be one of {choices}, not {value!r}")
        return value

    @model_validator(mode="after")
    def _checks(self):
        default_device(self.device)  # CUDA asked for where there is none: refused now, not in the training
        self.check()
        return self

    @classmethod
    def from_request(cls: Type[T], request: Dict[str, Any]) -> T:
        """Checked options from request params (missing ones take their defaults).

        Raises:
            CMRAssistError (422): an unknown key, a value of the wrong type, out of range or not among the choices,
                or a combination :meth:`check` refuses.
        """
        try:
            options = cls.model_validate(request)
        except ValidationError as e:
            raise CMRAssistError(readable(e), 422) from None
        return options

    def check(self) -> None:
        """Checks across options (subclasses add theirs); raise :class:`CMRAssistError` (422) or ``ValueError``."""

    @classmethod
    def with_defaults(cls: Type[T], defaults: Dict[str, Any]) -> Type[T]:
        """The same schema with some defaults replaced (the app's, e.g. ``max_minutes`` from its conf)."""
        if not defaults:
            return cls
        checked = cls.from_request(defaults)
        fields = {}
        for name in defaults:
            field = cls.model_fields[name]  # merged, the field keeps its bounds, choices and description
            fields[name] = (field.annotation, FieldInfo.merge_field_infos(field, default=getattr(checked, name)))
        return create_model(f"{cls.__name__}WithDefaults", __base__=cls, **fields)

    @classmethod
    def advertised(cls, defaults: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The options for ``GET /info/``: defaults, choices as lists with the default first."""
        defaults = defaults or {}
        out: Dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            value = defaults.get(name, field.default)
            choices = list((field.json_schema_extra or {}).get("enum") or ())
            if choices and name != "device":
                out[name] = [value] + [c for c in choices if c != value]
            else:
                out[name] = value if value is not None else "cuda or cpu (auto)"
        return out

    def as_dict(self) -> Dict[str, Any]:
        return self.model_dump()

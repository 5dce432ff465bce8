"""Request params -> typed, checked options: one parser for every train task, and the one boolean parser.

An option is a dataclass field made with :func:`option`: its default, its range or its choices live beside it,
so the parser checks them and the train task advertises them in ``GET /info/`` (MONAI Label's convention: a list
is a choice whose first item is the default).
"""

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Dict, Optional, Sequence, Type, TypeVar

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
    or for words the allowed ``choices``."""
    return field(
        default=default, metadata={"low": low, "high": high, "choices": tuple(choices or ()), "open_low": open_low}
    )


def _convert(f, raw: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if "bool" in kind:
        return parse_bool(raw, f"train option {f.name}")
    if kind in ("int", "float"):
        if isinstance(raw, bool):
            raise CMRAssistError(f"invalid train option {f.name}={raw!r}: {kind} expected", 422)
        try:
            number = float(raw)
            value = int(number) if kind == "int" else number
        except (TypeError, ValueError, OverflowError):
            raise CMRAssistError(f"invalid train option {f.name}={raw!r}: {kind} expected", 422) from None
        if not math.isfinite(number) or (kind == "int" and number != value):
            raise CMRAssistError(f"invalid train option {f.name}={raw!r}: a finite {kind} expected", 422)
        return value
    return None if raw is None else str(raw)


def _check_range(f, value: Any) -> None:
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise CMRAssistError(f"{f.name} must be one of {list(meta['choices'])}, not {value!r}", 422)
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value < low or (meta.get("open_low") and value == low)):
        raise CMRAssistError(f"{f.name} must be {'>' if meta.get('open_low') else '>='} {low:g}, not {value!r}", 422)
    if high is not None and value > high:
        raise CMRAssistError(f"{f.name} must be <= {high:g}, not {value!r}", 422)


@dataclass(frozen=True)
class TrainOptions:
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

    max_epochs: int = option(50, low=1, high=100000)
    max_minutes: float = option(10.0, low=0, high=7 * 24 * 60, open_low=True)
    val_split: float = option(0.2, low=0, high=0.9, open_low=True)
    device: Optional[str] = option(None, choices=("cpu", "cuda"))
    batch_size: int = option(16, low=1, high=1024)
    learning_rate: float = option(2e-3, low=0, high=1.0, open_low=True)
    from_scratch: bool = option(False)
    seed: int = option(0, low=0, high=2**31 - 1)

    #: Request keys MONAI Label itself adds to a train request (not options).
    META_KEYS: ClassVar[frozenset] = frozenset({"model", "gpus", "local_rank", "bundle_path"})

    @classmethod
    def from_request(cls: Type[T], request: Dict[str, Any]) -> T:
        """Checked options from request params (missing ones take their defaults).

        Raises:
            CMRAssistError (422): an unknown key, a value of the wrong type, out of range or not among the choices,
                or a combination :meth:`check` refuses.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(request) - set(known) - cls.META_KEYS)
        if unknown:
            raise CMRAssistError(f"unknown train option(s) {unknown}; known: {sorted(known)}", 422)
        values = {}
        for name, f in known.items():
            raw = request.get(name)
            if raw is None or (raw == "" and f.default is not None):
                continue
            values[name] = _convert(f, raw)
            _check_range(f, values[name])
        options = cls(**values)
        default_device(options.device)  # CUDA asked for where there is none: refused now, not in the training
        options.check()
        return options

    def check(self) -> None:
        """Checks across options (subclasses add theirs); raise :class:`CMRAssistError` (422)."""

    @classmethod
    def advertised(cls, defaults: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The options for ``GET /info/``: defaults, choices as lists with the default first."""
        defaults = defaults or {}
        out: Dict[str, Any] = {}
        for f in fields(cls):
            value = defaults.get(f.name, f.default if f.default is not MISSING else None)
            choices = list(f.metadata.get("choices") or ())
            if choices and f.name != "device":
                out[f.name] = [value] + [c for c in choices if c != value]
            else:
                out[f.name] = value if value is not None else "cuda or cpu (auto)"
        return out

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)

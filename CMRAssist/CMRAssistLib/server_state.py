"""What the Connection panel shows about a server: who it takes this user for, its models and its training."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from CMRAssistCore.progress import metric_name

from .account import Account
from .client import TrainStatus

SEGMENTATION_MODEL = "segmentation"


@dataclass
class ServerState:
    """What the Connection panel shows about a server."""

    url: str
    name: str = ""
    version: str = ""
    models: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    trainers: List[str] = field(default_factory=list)
    #: Each trainer's options: a default, or a list of choices with the default first (``GET /info/``).
    trainer_configs: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    strategies: List[str] = field(default_factory=list)
    training: TrainStatus = field(default_factory=TrainStatus)
    #: The account the server answers this user as (a server without sign-in: the open account, which may all).
    account: Account = field(default_factory=Account)

    @property
    def segmentation_trained(self) -> bool:
        return bool(self.models.get(SEGMENTATION_MODEL, {}).get("trained"))

    def summary(self) -> str:
        """A few lines for the status label."""
        lines = [f"{self.name} {self.version} at {self.url}".strip()]
        for model, info in sorted(self.models.items()):
            record = info.get("model_record") or {}
            score = record.get("score")
            if info.get("trained"):
                score = f", {metric_name(record.get('metric'))} {score:.3f}" if isinstance(score, float) else ""
                lines.append(f"model {model}: trained{score}")
            else:
                lines.append(f"model {model}: not trained yet (train it from labelled studies)")
        lines.append(
            "training: "
            + (f"running, {self.training.percent:.0f}%" if self.training.running else self.training.state.lower())
        )
        return "\n".join(lines)

    @classmethod
    def from_info(
        cls, url: str, info: Dict[str, Any], training: TrainStatus, account: Optional[Account] = None
    ) -> "ServerState":
        trainers = info.get("trainers") or {}
        configs = {name: dict((t or {}).get("config") or {}) for name, t in trainers.items()}
        return cls(
            url=url,
            name=str(info.get("name", "")),
            version=str(info.get("version", "")),
            models=dict(info.get("models") or {}),
            trainers=sorted(trainers),
            trainer_configs=configs,
            strategies=sorted(info.get("strategies") or {}),
            training=training,
            account=account or Account(),
        )

"""The one checkpoint format: network weights, their spec and preprocessing, and one record type; written
atomically, loaded with ``torch.load(weights_only=True)``, served through a cache that reloads on change.

``<model_dir>/<model>.pt`` holds ``{"format", "kind", "state_dict", "spec", "preprocess", "record", "extra"}``;
``<model>.json`` beside it is the record alone (read without torch by ``GET /info/`` and the model versions).
"""

import errno
import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Generic, Optional, Tuple, TypeVar

import torch

from cmrassist_server.core.errors import CMRAssistError

FORMAT = 1
PARTIAL_PREFIX = "partial-"


@dataclass
class ModelRecord:
    """What a published model was trained on and how well it validated.

    Args:
        kind: the model (``segmentation``, ``qc``, ``slice_position``, ``slice_classifier``).
        metric: the key of ``val`` that decided publication; ``score`` is its value.
        val: validation figures of the published epoch.
        epochs: epochs trained when it was published.
        train_size: training samples (frames for segmentation, slices for QC and slice position).
        val_size: validation samples, in the same unit.
        options: the run's options.
        details: what only this kind of model records (QC sources, class counts, CAM prior, label source, ...).
    """

    kind: str
    metric: str
    val: Dict[str, Any] = field(default_factory=dict)
    score: Optional[float] = None
    epochs: int = 0
    trained_at: float = field(default_factory=time.time)
    train_size: int = 0
    val_size: int = 0
    options: Dict[str, Any] = field(default_factory=dict)
    details: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkpoint:
    """A loaded checkpoint's parts (tensors on the device asked for)."""

    kind: str
    state_dict: Dict[str, torch.Tensor]
    spec: Dict[str, Any]
    record: Dict[str, Any]
    preprocess: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename: readers see the old or the new
    file, never a partial one (the ``partial-`` file of a killed writer is removed by the next run).

    Raises:
        CMRAssistError (507): the disk is full; the old file is untouched and nothing is left behind.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The whole suffix (``.nii.gz``): ITK picks its writer by it.
    suffix = ".nii.gz" if path.endswith(".nii.gz") else os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(folder)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CMRAssistError("the server's disk is full: nothing was stored; ask the administrator", 507) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """:func:`atomic_write` of ``data``."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def atomic_write_json(path: str, value: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(value, f, indent=2, allow_nan=False, default=str)

    atomic_write(path, write)


def fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def record_path(checkpoint: str) -> str:
    return os.path.splitext(checkpoint)[0] + ".json"


def history_path(checkpoint: str) -> str:
    """Per-epoch figures of the run that published ``checkpoint`` (archived with it as a version)."""
    return os.path.splitext(checkpoint)[0] + ".history.json"


def publish(
    path: str,
    model: torch.nn.Module,
    record: ModelRecord,
    *,
    spec: Dict[str, Any],
    preprocess: Optional[Dict[str, Any]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> None:
    """Write the checkpoint, then its JSON record, each atomically."""
    payload = {
        "format": FORMAT,
        "kind": record.kind,
        "state_dict": model.state_dict(),
        "spec": spec,
        "preprocess": preprocess,
        "record": asdict(record),
        "extra": extra or {},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    atomic_write_json(record_path(path), {**asdict(record), "checkpoint_sha256": file_sha256(path)})


def load(path: str, device: str = "cpu", *, kind: Optional[str] = None) -> Checkpoint:
    """Read a checkpoint (tensors only: ``weights_only=True``, no code runs from the file).

    Raises:
        CMRAssistError (409): the file is unreadable, not a CMRAssist checkpoint, or of another kind of model.
    """
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many types for damaged or foreign files
        raise CMRAssistError(
            f"model file {os.path.basename(path)!r} cannot be loaded: {str(e).splitlines()[0]}", 409
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CMRAssistError(
            f"model file {os.path.basename(path)!r} is not a CMRAssist checkpoint (format {FORMAT})", 409
        )
    if kind is not None and payload.get("kind") != kind:
        raise CMRAssistError(
            f"model file {os.path.basename(path)!r} holds a {payload.get('kind')!r} model, not {kind!r}", 409
        )
    return Checkpoint(
        kind=payload["kind"],
        state_dict=payload["state_dict"],
        spec=payload["spec"],
        record=payload.get("record") or {},
        preprocess=payload.get("preprocess"),
        extra=payload.get("extra") or {},
    )


def read_record(path: str) -> Optional[Dict[str, Any]]:
    """The JSON record beside a checkpoint, checked against the checkpoint it describes (``None`` without one).

    A process killed between writing a checkpoint and its record leaves a record of the previous model: the
    record names its checkpoint's SHA-256, so a mismatch is noticed and the record is rebuilt from the one saved
    inside the checkpoint.
    """
    try:
        with open(record_path(path)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        record = None
    if not os.path.isfile(path):
        return record
    digest = file_sha256(path)
    if record is None or record.get("checkpoint_sha256") != digest:
        try:
            record = {**load(path).record, "checkpoint_sha256": digest}
        except CMRAssistError:
            return None
        atomic_write_json(record_path(path), record)
    return record


_DIGESTS: Dict[Tuple[str, int, int, int], str] = {}


def file_sha256(path: str) -> str:
    """SHA-256 of a file, remembered while the file is unchanged (same inode, size and mtime)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def remove_partial_files(checkpoint: str) -> None:
    """Drop half-written files a killed run left beside ``checkpoint`` (the served file itself is never partial)."""
    folder = os.path.dirname(os.path.abspath(checkpoint))
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(PARTIAL_PREFIX):
                os.remove(os.path.join(folder, name))


M = TypeVar("M")


class ServedModel(Generic[M]):
    """The served model of one checkpoint path, loaded once and again only when the file changes (training and
    version changes replace it atomically, so a new file means a new inode and mtime).

    Args:
        checkpoint: the served checkpoint's path (may not exist yet).
        loader: builds the in-memory model from the path.
    """

    def __init__(self, checkpoint: str, loader: Callable[[str], M]):
        self.checkpoint = checkpoint
        self.loader = loader
        self._lock = threading.Lock()
        self._stamp: Optional[Tuple[float, int, int]] = None
        self._loaded: Optional[M] = None

    def exists(self) -> bool:
        return os.path.isfile(self.checkpoint)

    def get(self) -> Optional[M]:
        """The loaded model, ``None`` before one is published."""
        try:
            st = os.stat(self.checkpoint)
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime, st.st_ino, st.st_size)
        with self._lock:
            if self._loaded is None or stamp != self._stamp:
                self._loaded = self.loader(self.checkpoint)
                self._stamp = stamp
            return self._loaded

    def record(self) -> Optional[Dict[str, Any]]:
        return read_record(self.checkpoint) if self.exists() else None

    def describe(self) -> Dict[str, Any]:
        """What ``GET /info/`` says of the model: trained or not, its record, the version served."""
        from cmrassist_server.core.model_versions import served_version

        record = self.record()
        return {
            "trained": record is not None,
            "model_record": record,
            "version": served_version(self.checkpoint) if record is not None else None,
        }

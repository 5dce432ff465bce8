"""Published model versions: every training run's result is archived, listed, and can be made current again.

``<model_dir>/versions/<model>/<version>.pt`` with its record ``<version>.json`` beside it; the served
checkpoint (``<model_dir>/<model>.pt``) is replaced atomically when a version is made current, so the infer tasks
pick it up on their next request (they reload on a changed file).
"""

import json
import os
import shutil
import time
from typing import Any, Dict, List, Optional

from cmrassist_server.core.checkpoints import atomic_write, history_path, record_path
from cmrassist_server.core.errors import CMRAssistError

#: The id listed for a served checkpoint that is not archived yet.
SERVED = "served"
#: The id of the model CMRAssist ships (``models/``), installed into an empty model folder.
SHIPPED = "shipped"


def _folder(checkpoint: str) -> str:
    name = os.path.splitext(os.path.basename(checkpoint))[0]
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "versions", name)


def archive(checkpoint: str) -> str:
    """Keep a copy of the served checkpoint and its record as a new version; returns the version id.

    A checkpoint already archived (same record) is not copied again: its version id is returned.
    """
    served = [v["version"] for v in list_versions(checkpoint) if v["current"] and v["archived"]]
    if served:
        return served[-1]
    folder = _folder(checkpoint)
    os.makedirs(folder, exist_ok=True)
    version = time.strftime("%Y%m%d-%H%M%S", time.gmtime(os.path.getmtime(checkpoint)))
    n = 1
    while os.path.exists(os.path.join(folder, version + ".pt")):
        n += 1
        version = version.split("_")[0] + f"_{n}"
    atomic_write(os.path.join(folder, version + ".pt"), lambda tmp: shutil.copyfile(checkpoint, tmp))
    for source, suffix in ((record_path(checkpoint), ".json"), (history_path(checkpoint), ".history.json")):
        if os.path.isfile(source):
            atomic_write(
                os.path.join(folder, version + suffix), lambda tmp, source=source: shutil.copyfile(source, tmp)
            )
    return version


def archive_served(checkpoint: str) -> None:
    """Archive the served checkpoint if it is not yet (a run stopped early publishes without reaching ``archive``),
    so that the next run's publication does not replace it for good."""
    if os.path.isfile(checkpoint):
        archive(checkpoint)


def list_versions(checkpoint: str) -> List[Dict[str, Any]]:
    """Every archived version, oldest first, with its record and whether it is the one served now."""
    folder = _folder(checkpoint)
    current = _read(record_path(checkpoint))
    out = []
    names = sorted(f for f in os.listdir(folder) if f.endswith(".pt")) if os.path.isdir(folder) else []
    names.sort(key=lambda name: name != SHIPPED + ".pt")  # the shipped model first, then the runs in time order
    for name in names:
        version = name[:-3]
        record = _read(os.path.join(folder, version + ".json"))
        out.append(
            {"version": version, "record": record, "current": bool(record) and _same(record, current), "archived": True}
        )
    if os.path.isfile(checkpoint) and not any(v["current"] for v in out):
        # Published by a run that was stopped before it could archive: archived by the next run or version change.
        out.append({"version": SERVED, "record": current, "current": True, "archived": False})
    return out


def _same(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """The same published model (a record written before records named their checkpoint's digest matches too)."""
    return {k: v for k, v in a.items() if k != "checkpoint_sha256"} == {
        k: v for k, v in b.items() if k != "checkpoint_sha256"
    }


def make_current(checkpoint: str, version: str) -> Dict[str, Any]:
    """Serve an archived version again (checkpoint and record replaced atomically); the served one is archived first."""
    if version == SERVED and os.path.isfile(checkpoint):
        return {"version": version, "record": _read(record_path(checkpoint))}
    source = os.path.join(_folder(checkpoint), os.path.basename(version) + ".pt")
    if os.path.basename(version) != version or not os.path.isfile(source):
        raise CMRAssistError(f"no archived version {version!r}", 404)
    archive_served(checkpoint)
    atomic_write(checkpoint, lambda tmp: shutil.copyfile(source, tmp))
    record = source[:-3] + ".json"
    if os.path.isfile(record):
        atomic_write(record_path(checkpoint), lambda tmp: shutil.copyfile(record, tmp))
    return {"version": version, "record": _read(record)}


def _read(path: str) -> Dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def install_version(checkpoint: str, source: str, version: str) -> None:
    """Keep ``source`` (a checkpoint with its record beside it) as archived ``version`` and serve it."""
    folder = _folder(checkpoint)
    os.makedirs(folder, exist_ok=True)
    for path, suffix in ((source, ".pt"), (record_path(source), ".json"), (history_path(source), ".history.json")):
        if os.path.isfile(path):
            atomic_write(os.path.join(folder, version + suffix), lambda tmp, path=path: shutil.copyfile(path, tmp))
    make_current(checkpoint, version)


def served_version(checkpoint: str) -> Optional[str]:
    """The id of the version served now (``served`` when not archived yet; ``None`` before any model)."""
    current = [v["version"] for v in list_versions(checkpoint) if v["current"]]
    return current[-1] if current else None

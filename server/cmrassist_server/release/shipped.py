"""The shipped models (``models/`` in the repository: segmentation, QC, slice position) put into service: a server
whose model folder lacks a model installs the shipped one, after checking it against ``models/SHA256SUMS``,
as the model version ``shipped`` (listed first; retraining starts from it and publishes as usual). The fold
ensemble (``models/ensemble.json`` and ``models/ensemble/``, made by ``release/ensemble.py``) is installed beside
them, each member checked the same way; batch work uses it while the served model is the one it shipped with."""

import logging
import os
import shutil
from typing import Dict, Optional

from cmrassist_server.core.checkpoints import atomic_write, atomic_write_json, file_sha256
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.model_versions import SHIPPED, install_version
from cmrassist_server.segmentation.batch import MANIFEST, member_paths, read_manifest
from cmrassist_server.segmentation.engine import engine_path

logger = logging.getLogger(__name__)

MODELS = ("segmentation", "slice_position", "qc")
CHECKSUMS = "SHA256SUMS"


def shipped_folder() -> str:
    """``models/`` beside ``server/`` in the repository (the default of the app's ``shipped_dir`` setting)."""
    here = os.path.abspath(__file__)  # <repo>/server/cmrassist_server/release/shipped.py
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here)))), "models")


def read_checksums(folder: str) -> Dict[str, str]:
    """``SHA256SUMS`` of ``folder`` (``sha256sum -c`` format) as digest by file (path relative to ``folder``)."""
    sums = {}
    if os.path.isfile(os.path.join(folder, CHECKSUMS)):
        with open(os.path.join(folder, CHECKSUMS)) as f:
            for line in f.read().splitlines():
                digest, _, file = line.partition("  ")
                sums[file.strip()] = digest.strip()
    return sums


def verified_file(folder: str, file: str) -> str:
    """The path of shipped ``file`` (relative to ``folder``, e.g. ``ensemble/fold0.pt``) after its SHA-256 matched
    ``SHA256SUMS``.

    Args:
        folder: the shipped models' folder.
        file: the file's path relative to it, as ``SHA256SUMS`` names it.

    Raises:
        CMRAssistError (409): no checksum for it, or a file that does not match (changed or damaged).
    """
    path = os.path.join(folder, file)
    sums = read_checksums(folder)
    if file not in sums:
        raise CMRAssistError(f"shipped model {path} has no checksum in {CHECKSUMS}: not served", 409)
    if not os.path.isfile(path) or file_sha256(path) != sums[file]:
        raise CMRAssistError(
            f"shipped model {path} does not match its checksum in {CHECKSUMS} (changed or damaged): not served; "
            "restore it from the repository",
            409,
        )
    return path


def verified(folder: str, name: str) -> str:
    """The path of shipped ``name``.pt after its SHA-256 matched ``SHA256SUMS`` (see :func:`verified_file`)."""
    return verified_file(folder, f"{name}.pt")


def install_engine(model_dir: str, folder: str) -> None:
    """Install the shipped CPU engine (``segmentation.onnx``, the ONNX export of the shipped weights) beside the
    segmentation model just installed, checked against ``SHA256SUMS``; without it (none shipped, or refused) the
    server exports the weights itself on first use (``segmentation/engine.py``)."""
    name = engine_path("segmentation.pt")
    if not os.path.isfile(os.path.join(folder, name)):
        return
    try:
        source = verified_file(folder, name)
        atomic_write(os.path.join(model_dir, name), lambda tmp: shutil.copyfile(source, tmp))
    except (CMRAssistError, OSError) as e:
        logger.warning(f"shipped CPU engine not installed: {e}; the server exports the served weights itself")


def install_ensemble(model_dir: str, folder: str) -> Optional[str]:
    """Install the shipped fold ensemble (``ensemble.json`` and its members) into a model folder that has none,
    every file checked against ``SHA256SUMS`` and the manifest first; returns what happened (``installed``,
    ``present`` or the refusal), ``None`` when nothing is shipped. A refused ensemble installs no file at all:
    batch work then uses the served model (``segmentation/batch.py``).

    Args:
        model_dir: the server's model folder.
        folder: the shipped models' folder.
    """
    if not os.path.isfile(os.path.join(folder, MANIFEST)):
        return None
    if os.path.isfile(os.path.join(model_dir, MANIFEST)):
        return "present"
    try:
        verified_file(folder, MANIFEST)
        manifest = read_manifest(folder)
        sources = [verified_file(folder, member["file"]) for member in manifest["members"]]
        member_paths(folder, manifest)  # SHA256SUMS and the manifest must agree on every member
    except CMRAssistError as e:
        logger.error(f"shipped fold ensemble refused: {e}; batch work uses the served segmentation model")
        return f"refused: {e}"
    for source, member in zip(sources, manifest["members"]):
        target = os.path.join(model_dir, member["file"])
        atomic_write(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
    # The manifest last: a model folder holds one only once every member it names is in place.
    atomic_write_json(os.path.join(model_dir, MANIFEST), manifest)
    logger.info(f"shipped fold ensemble ({len(sources)} models) installed into {model_dir}")
    return "installed"


def install_shipped(model_dir: str, folder: str) -> Dict[str, str]:
    """Install every shipped model whose served checkpoint is missing, and the fold ensemble where one is shipped;
    returns what happened to each model (``installed``, ``present``, ``none shipped`` or the refusal).

    Args:
        model_dir: the server's model folder.
        folder: the shipped models' folder.
    """
    outcome = {}
    for name in MODELS:
        target = os.path.join(model_dir, f"{name}.pt")
        if os.path.isfile(target):
            outcome[name] = "present"
            continue
        if not os.path.isfile(os.path.join(folder, f"{name}.pt")):
            outcome[name] = "none shipped"
            continue
        try:
            install_version(target, verified(folder, name), SHIPPED)
            outcome[name] = "installed"
            if name == "segmentation":
                install_engine(model_dir, folder)
            logger.info(f"shipped {name} model installed into {model_dir}")
        except CMRAssistError as e:
            outcome[name] = f"refused: {e}"
            logger.error(str(e))
    ensemble = install_ensemble(model_dir, folder)
    if ensemble is not None:  # listed only where one is shipped
        outcome["ensemble"] = ensemble
    return outcome

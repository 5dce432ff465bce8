"""The shipped models (``models/`` in the repository: segmentation, QC, slice position) put into service: a server
whose model folder lacks a model installs the shipped one, after checking it against ``models/SHA256SUMS``,
as the model version ``shipped`` (listed first; retraining starts from it and publishes as usual)."""

import logging
import os
from typing import Dict

from cmrassist_server.core.checkpoints import file_sha256
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.model_versions import SHIPPED, install_version

logger = logging.getLogger(__name__)

MODELS = ("segmentation", "slice_position", "qc")
CHECKSUMS = "SHA256SUMS"


def shipped_folder() -> str:
    """``models/`` beside ``server/`` in the repository (the default of the app's ``shipped_dir`` setting)."""
    here = os.path.abspath(__file__)  # <repo>/server/cmrassist_server/release/shipped.py
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here)))), "models")


def verified(folder: str, name: str) -> str:
    """The path of shipped ``name``.pt after its SHA-256 matched ``SHA256SUMS``.

    Raises:
        CMRAssistError (409): no checksum for it, or a file that does not match (changed or damaged).
    """
    path = os.path.join(folder, f"{name}.pt")
    sums = {}
    if os.path.isfile(os.path.join(folder, CHECKSUMS)):
        with open(os.path.join(folder, CHECKSUMS)) as f:
            for line in f.read().splitlines():
                digest, _, file = line.partition("  ")
                sums[file.strip()] = digest.strip()
    if f"{name}.pt" not in sums:
        raise CMRAssistError(f"shipped model {path} has no checksum in {CHECKSUMS}: not served", 409)
    if file_sha256(path) != sums[f"{name}.pt"]:
        raise CMRAssistError(f"shipped model {path} does not match its checksum in {CHECKSUMS} (changed or damaged): "
                             "not served; restore it from the repository", 409)  # fmt: skip
    return path


def install_shipped(model_dir: str, folder: str) -> Dict[str, str]:
    """Install every shipped model whose served checkpoint is missing; returns what happened to each model
    (``installed``, ``present``, ``none shipped`` or the refusal)."""
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
            logger.info(f"shipped {name} model installed into {model_dir}")
        except CMRAssistError as e:
            outcome[name] = f"refused: {e}"
            logger.error(str(e))
    return outcome

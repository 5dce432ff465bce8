"""What a serving app sets up before its first request: sign-in, the audit log, the ranking service, every route;
and the refusals that keep a lab's server safe (started without ``api/asgi.py``, or on the network without sign-in).
"""

import ipaddress
import logging
import os
import sys
from typing import List, Optional

from cmrassist_server.accounts.audit import AuditLog
from cmrassist_server.accounts.oidc import OIDCVerifier, oidc_settings
from cmrassist_server.accounts.store import AccountStore
from cmrassist_server.annotations.review import VersionService
from cmrassist_server.api import install_routes
from cmrassist_server.api.security import Authenticator
from cmrassist_server.release.shipped import install_shipped, shipped_folder
from cmrassist_server.slice_position.ranking import RankingService
from cmrassist_server.slice_position.ranking_store import RankingStore

logger = logging.getLogger(__name__)


def accounts_path(state_dir: str) -> str:
    """Where the local accounts of a studies folder live (``cmrassist users --studies DIR`` finds them here)."""
    return os.path.join(state_dir, "users.sqlite")


def listen_host(argv: List[str]) -> str:
    """The ``--host`` the server was started with (MONAI Label's default 0.0.0.0 when absent)."""
    return argv[argv.index("--host") + 1] if "--host" in argv[:-1] else "0.0.0.0"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def start_serving(instance, app, *, argv: Optional[List[str]] = None) -> RankingService:
    """Set up the serving app ``instance`` (``CMRAssistApp``) on MONAI Label's FastAPI ``app``.

    Raises:
        RuntimeError: started without the hardened ASGI app, or listening beyond loopback without sign-in.
    """
    if "cmrassist_server.api.asgi" not in sys.modules:
        raise RuntimeError(
            "start the server with `cmrassist serve` (or monailabel start_server --uvicorn_app "
            "cmrassist_server.api.asgi:app): MONAI Label's plain app exposes routes this one must not"
        )
    conf, state = instance.app_conf, instance.state_dir
    os.makedirs(state, exist_ok=True)
    oidc = oidc_settings(conf)
    auth = Authenticator(AccountStore(accounts_path(state)), OIDCVerifier(oidc) if oidc else None)
    host = listen_host(argv if argv is not None else sys.argv)
    if not is_loopback(host) and not auth.enabled():
        raise RuntimeError(
            f"refusing to listen on {host} without sign-in: add accounts first (`cmrassist users add "
            f"NAME --role admin --studies {instance.studies}`) or configure OIDC, or listen on "
            "127.0.0.1"
        )
    # The ``shipped_dir`` setting, else CMRASSIST_SHIPPED_DIR (the tests' servers: "none"), else ``models/``.
    shipped = conf.shipped_dir or os.environ.get("CMRASSIST_SHIPPED_DIR") or shipped_folder()
    instance.shipped = install_shipped(conf.model_dir, shipped) if shipped != "none" else {}
    ranking = RankingService(
        RankingStore(os.path.join(state, "ranking.sqlite"), max_open_batches=conf.max_open_batches),
        instance.datastore,
        os.path.join(state, "thumbnails"),
    )
    ranking.sync()
    versions = VersionService(instance.label_versions(), instance.datastore) if instance.local else None
    install_routes(
        app,
        instance=lambda: instance,
        auth=auth,
        audit=AuditLog(os.path.join(state, "audit.sqlite")),
        uploads=os.path.join(state, "uploads"),
        trainers=instance._trainers,
        ranking=ranking,
        checkpoints={name: cfg.checkpoint for name, cfg in instance.models.items()},
        versions=versions,
    )
    logger.info(
        f"CMRAssist serving on {host}; sign-in {'required' if auth.enabled() else 'off (loopback, no accounts)'}"
    )
    return ranking

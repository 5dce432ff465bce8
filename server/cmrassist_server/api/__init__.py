"""HTTP routes the app adds in front of MONAI Label's: checked training, model versions, ranking, label
versions. Errors are ``core.errors.CMRAssistError``, which FastAPI answers itself.
"""

import os

from fastapi import FastAPI

from cmrassist_server.api.accounts import install_account_routes
from cmrassist_server.api.cohort import install_cohort_routes
from cmrassist_server.api.datastore import install_datastore_routes
from cmrassist_server.api.infer import install_infer_routes
from cmrassist_server.api.model_versions import install_model_version_routes
from cmrassist_server.api.ranking import install_ranking_routes
from cmrassist_server.api.report import install_report_routes
from cmrassist_server.api.security import install_security
from cmrassist_server.api.tasks import install_task_routes
from cmrassist_server.api.train import install_train_routes
from cmrassist_server.api.versions import install_version_routes

__all__ = [
    "install_routes",
    "install_model_version_routes",
    "install_ranking_routes",
    "install_train_routes",
    "install_version_routes",
]


def install_routes(
    app: FastAPI, *, instance, auth, audit, uploads, trainers, checkpoints, ranking, versions=None
) -> None:
    """Sign-in and every route, in front of MONAI Label's own.

    Args:
        app: MONAI Label's FastAPI app.
        instance: returns the MONAI Label app.
        auth: who calls (``api/security.Authenticator``).
        audit: the audit log.
        uploads: folder for uploads in flight.
        trainers: the train tasks by model name.
        checkpoints: served checkpoint path by model name.
        ranking: the ranking service.
        versions: the label-version service (local datastores only).
    """
    install_security(app, auth)
    install_account_routes(app, instance, audit)
    install_infer_routes(app, instance, os.path.join(uploads, "infer"))
    install_datastore_routes(app, lambda: instance().datastore(), os.path.join(uploads, "datastore"))
    install_train_routes(app, trainers)
    install_task_routes(app, instance)
    install_model_version_routes(app, checkpoints)
    install_cohort_routes(app, checkpoints)
    install_ranking_routes(app, ranking)
    install_report_routes(app)
    if versions is not None:
        install_version_routes(app, versions)

"""How the app's routes go in front of MONAI Label's, and the role checks they share."""

from fastapi import Depends, FastAPI


def mount_first(app: FastAPI, router, key: str) -> None:
    """Put ``router``'s routes in front of MONAI Label's (routes are matched in order, so ours answer first);
    a second call with the same ``key`` does nothing (the app object outlives a re-created MONAI Label app)."""
    mounted = getattr(app.state, "cmrassist_routes", set())
    if key in mounted:
        return
    app.state.cmrassist_routes = mounted | {key}
    for route in reversed(router.routes):
        app.router.routes.insert(0, route)


def role(name: str):
    """The dependency that admits callers holding role ``name`` (``user``, ``annotator``, ``reviewer``,
    ``admin``) or a higher one, and gives the route their account (``accounts.roles.Account``)."""
    from cmrassist_server.api.security import requires

    return Depends(requires(name))


def api_prefix() -> str:
    from monailabel.config import settings

    return settings.MONAI_LABEL_API_STR


def record(request, account, action: str, target=None, **details) -> None:
    """Append a change to the audit log (``accounts/audit.py``): who, what, on what, from which address."""
    log = getattr(request.app.state, "cmrassist_audit", None)
    if log is not None:
        address = request.client.host if request.client else None
        log.append(account.name, action, target=target, role=account.role, details=details, address=address)

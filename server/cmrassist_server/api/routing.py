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
    """The dependency that admits callers holding MONAI Label role ``name`` (``user``, ``annotator``,
    ``reviewer``, ``admin``)."""
    from monailabel.config import settings
    from monailabel.endpoints.user.auth import RBAC

    roles = {
        "user": settings.MONAI_LABEL_AUTH_ROLE_USER,
        "annotator": settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR,
        "reviewer": settings.MONAI_LABEL_AUTH_ROLE_REVIEWER,
        "admin": settings.MONAI_LABEL_AUTH_ROLE_ADMIN,
    }
    return Depends(RBAC(roles[name]))


def api_prefix() -> str:
    from monailabel.config import settings

    return settings.MONAI_LABEL_API_STR

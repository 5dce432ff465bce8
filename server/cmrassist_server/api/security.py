"""Sign-in and roles on every route: ours and MONAI Label's own.

Every request is answered as an :class:`accounts.roles.Account`: from a local API token or an OIDC JWT when the
server has accounts (or OIDC) configured, else the open single-user account (a server on loopback only; see
``api/asgi.py``). MONAI Label's routes check roles through its ``RBAC`` dependency, whose user comes from
``get_current_user``: that dependency is overridden here, so one sign-in serves both.
"""

import time
from typing import Optional

from fastapi import Depends, FastAPI, Request

from cmrassist_server.accounts.oidc import OIDCVerifier
from cmrassist_server.accounts.roles import OPEN, Account
from cmrassist_server.accounts.store import AccountStore
from cmrassist_server.core.errors import CMRAssistError

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cmrassist"'}


class Authenticator:
    """Turns an ``Authorization`` header into an account.

    Args:
        store: the local accounts.
        oidc: the OIDC provider's verifier, when configured.
    """

    def __init__(self, store: AccountStore, oidc: Optional[OIDCVerifier] = None):
        self.store, self.oidc = store, oidc
        self._enabled = (0.0, False)

    def enabled(self) -> bool:
        """Sign-in is required once an account exists or OIDC is configured (re-read every 2 s)."""
        checked, value = self._enabled
        if time.monotonic() - checked > 2.0:
            value = self.oidc is not None or self.store.active_count() > 0
            self._enabled = (time.monotonic(), value)
        return value

    def account(self, authorization: Optional[str]) -> Account:
        """The caller's account; CMRAssistError 401 (with ``WWW-Authenticate``) when it cannot be established."""
        if not self.enabled():
            return OPEN
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise CMRAssistError(
                "sign in first: send 'Authorization: Bearer <your API token>' (cmrassist users add "
                "makes one) or your institution's token",
                401,
                CHALLENGE,
            )
        token = token.strip()
        account = self.store.verify(token) if token.startswith("cmra_") else None
        if account is None and self.oidc is not None and not token.startswith("cmra_"):
            account = self.oidc.verify(token)
        if account is None:
            raise CMRAssistError("the token is invalid, expired or revoked: sign in again", 401, CHALLENGE)
        return account


def current_account(request: Request) -> Account:
    """The request's account (established once per request)."""
    account = getattr(request.state, "cmrassist_account", None)
    if account is None:
        auth: Authenticator = request.app.state.cmrassist_auth
        account = auth.account(request.headers.get("authorization"))
        request.state.cmrassist_account = account
    return account


def requires(role: str):
    """A route dependency admitting accounts that hold ``role`` (or a higher one); returns the account."""

    def dependency(account: Account = Depends(current_account)) -> Account:
        if not account.allows(role):
            raise CMRAssistError(f"this needs the {role} role; your account {account.name!r} is {account.role}", 403)
        return account

    return dependency


def install_security(app: FastAPI, auth: Authenticator) -> None:
    """Make ``auth`` decide who calls every route, MONAI Label's included."""
    from monailabel.config import settings
    from monailabel.endpoints.user.auth import User, get_current_user

    def monai_user(account: Account = Depends(current_account)) -> User:
        return User(username=account.name, name=account.name, roles=account.monai_roles())

    app.state.cmrassist_auth = auth
    app.dependency_overrides[get_current_user] = monai_user
    settings.MONAI_LABEL_AUTH_ENABLE = True  # MONAI Label's RBAC now checks the roles of the account above

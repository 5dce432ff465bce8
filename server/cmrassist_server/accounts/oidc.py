"""OIDC sign-in for institutions (Keycloak, Azure AD, any provider): a bearer JWT checked against the provider's
JWKS (signature, issuer, audience, expiry), with the role and expertise read from configurable claims.

The keys are fetched once and cached (a new ``kid`` fetches again); no other network call is made per request.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

import jwt

from cmrassist_server.accounts.roles import ROLES, Account, check_expertise
from cmrassist_server.core.errors import CMRAssistError


@dataclass(frozen=True)
class OIDCSettings:
    """Where tokens come from and how to read them (the app's ``oidc_*`` conf keys).

    Args:
        issuer: the ``iss`` every token must carry.
        audience: the ``aud`` every token must carry (the client id of this server).
        jwks_url: the provider's JSON Web Key Set.
        name_claim: claim holding the account name.
        roles_claim: claim (dot path, e.g. ``realm_access.roles``) holding a role or a list of roles.
        expertise_claim: claim holding ``expert`` or ``non_expert``.
        role_map: provider role -> our role (``"cmr-admin=admin,cmr-reviewer=reviewer"``); the highest one wins.
    """

    issuer: str
    audience: str
    jwks_url: str
    name_claim: str = "preferred_username"
    roles_claim: str = "roles"
    expertise_claim: str = "expertise"
    role_map: str = ""

    def roles(self) -> Dict[str, str]:
        mapping = {r: r for r in ROLES[1:]}
        for pair in filter(None, self.role_map.split(",")):
            provider, _, ours = pair.partition("=")
            mapping[provider.strip()] = ours.strip()
        return mapping


def oidc_settings(conf) -> Optional[OIDCSettings]:
    """The provider of the app's conf (``core.conf.AppConf`` ``oidc_*`` keys); ``None`` when none is configured.

    Raises:
        CMRAssistError: only some of issuer, audience and JWKS URL given.
    """
    parts = (conf.oidc_issuer, conf.oidc_audience, conf.oidc_jwks_url)
    if not any(parts):
        return None
    if not all(parts):
        raise CMRAssistError("OIDC needs oidc_issuer, oidc_audience and oidc_jwks_url together")
    return OIDCSettings(
        issuer=conf.oidc_issuer,
        audience=conf.oidc_audience,
        jwks_url=conf.oidc_jwks_url,
        name_claim=conf.oidc_name_claim,
        roles_claim=conf.oidc_roles_claim,
        expertise_claim=conf.oidc_expertise_claim,
        role_map=conf.oidc_role_map,
    )


class OIDCVerifier:
    """Verifies bearer JWTs against one provider."""

    def __init__(self, settings: OIDCSettings):
        self.settings = settings
        self.jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=3600, timeout=10)

    def verify(self, token: str) -> Optional[Account]:
        """The account a valid token names; ``None`` for any invalid token (bad signature, issuer, audience,
        expired); CMRAssistError (403) for a valid token that carries no role of this server."""
        try:
            key = self.jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={"require": ["exp", "iss", "aud"]},
                leeway=30,
            )
        except (jwt.PyJWTError, jwt.PyJWKClientError, ValueError):
            return None
        name = claims.get(self.settings.name_claim) or claims.get("sub")
        role = self._role(_claim(claims, self.settings.roles_claim))
        if not name or role is None:
            raise CMRAssistError(
                "your sign-in is valid but gives no role on this server (annotator, reviewer or "
                "admin): ask your identity administrator",
                403,
            )
        expertise = _claim(claims, self.settings.expertise_claim)
        try:
            expertise = check_expertise(expertise) if isinstance(expertise, str) else None
        except CMRAssistError:
            expertise = None
        return Account(name=str(name), role=role, expertise=expertise or "non_expert", source="oidc")

    def _role(self, value: Any) -> Optional[str]:
        names = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        ours = [self.settings.roles().get(str(n)) for n in names]
        ranked = [r for r in ours if r in ROLES]
        return max(ranked, key=ROLES.index) if ranked else None


def _claim(claims: Dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value

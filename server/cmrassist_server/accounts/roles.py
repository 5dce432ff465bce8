"""Roles, what each may do, and the signed-in account a request acts as."""

from dataclasses import dataclass
from typing import List, Optional

from cmrassist_server.core.errors import CMRAssistError

#: Roles from least to most: everyone signed in reads ("user"); annotators submit labels and rankings; reviewers
#: also accept versions, build consensus, set cut points; admins also train, serve model versions, start cohorts.
ROLES = ("user", "annotator", "reviewer", "admin")
EXPERTISE = ("expert", "non_expert")


def check_role(role: str) -> str:
    if role not in ROLES[1:]:
        raise CMRAssistError(f"role must be one of {list(ROLES[1:])}, not {role!r}", 422)
    return role


def check_expertise(expertise: Optional[str]) -> Optional[str]:
    """``expert`` or ``non_expert`` (``non-expert`` accepted); ``None`` for accounts that do not annotate."""
    if expertise is None:
        return None
    value = expertise.replace("-", "_")
    if value not in EXPERTISE:
        raise CMRAssistError(f"expertise must be one of {list(EXPERTISE)}, not {expertise!r}", 422)
    return value


@dataclass(frozen=True)
class Account:
    """The identity a request acts as.

    Args:
        name: the account name, recorded as the annotator or reviewer of what it submits.
        role: one of :data:`ROLES`.
        expertise: ``expert``/``non_expert`` (how its labels are weighted in training).
        source: ``local`` (API token), ``oidc`` (bearer JWT) or ``open`` (no sign-in: a server on loopback with
            no accounts, the single-user default).
    """

    name: str
    role: str
    expertise: Optional[str] = None
    source: str = "local"

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def open(self) -> bool:
        return self.source == "open"

    def monai_roles(self) -> List[str]:
        """MONAI Label's role names this account holds (its own and every lesser one)."""
        from monailabel.config import settings

        names = {
            "user": settings.MONAI_LABEL_AUTH_ROLE_USER,
            "annotator": settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR,
            "reviewer": settings.MONAI_LABEL_AUTH_ROLE_REVIEWER,
            "admin": settings.MONAI_LABEL_AUTH_ROLE_ADMIN,
        }
        return [names[r] for r in ROLES[: ROLES.index(self.role) + 1]]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "role": self.role,
            "expertise": self.expertise,
            "source": self.source,
            "may": [r for r in ROLES if self.allows(r)],
        }


#: The account of a server without sign-in (loopback, no accounts): may do everything; names come from requests.
OPEN = Account(name="local user", role="admin", expertise=None, source="open")

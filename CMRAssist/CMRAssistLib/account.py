"""Who the server takes this user for (``GET /auth/me``) and what that account's role allows; no Qt here.

Roles go from least to most: everyone signed in reads (``user``: studies, segmentation, QC); ``annotator`` also
submits labels and rankings; ``reviewer`` also accepts versions, builds consensus and sets the cut points; ``admin``
also trains and serves model versions. A server without sign-in (one user on its own computer) allows everything.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

ROLES = ("user", "annotator", "reviewer", "admin")
#: What each role adds to the one below it, as the Connection panel says it.
ROLE_ADDS = {
    "user": "read studies, segment them and check their quality",
    "annotator": "submit labels and rank slices",
    "reviewer": "accept label versions, build consensus and set the cut points",
    "admin": "train the models and serve model versions",
}
SOURCES = {"local": "local account", "oidc": "institution sign-in", "open": "no sign-in"}


@dataclass
class Account:
    """The account a server answers this user's requests as.

    Args:
        name: the account name (the server records it as the annotator or reviewer).
        role: ``user``, ``annotator``, ``reviewer`` or ``admin``.
        expertise: ``expert``/``non_expert`` as the account records it; None when it records none.
        source: ``local`` (API token), ``oidc`` (an institution's token) or ``open`` (the server has no sign-in).
        may: every role whose work the account may do (its own and the lesser ones).
    """

    name: str = ""
    role: str = "admin"
    expertise: Optional[str] = None
    source: str = "open"
    may: List[str] = field(default_factory=lambda: list(ROLES))

    @classmethod
    def from_me(cls, answer: Dict[str, Any]) -> "Account":
        """The account of a ``GET /auth/me`` answer."""
        role = str(answer.get("role") or "user")
        may = [str(r) for r in answer.get("may") or ROLES[: ROLES.index(role) + 1 if role in ROLES else 1]]
        expertise = answer.get("expertise")
        return cls(
            name=str(answer.get("name") or ""),
            role=role,
            expertise=None if expertise is None else str(expertise),
            source=str(answer.get("source") or "open"),
            may=may,
        )

    @property
    def signed_in(self) -> bool:
        """Whether the server knows who this is (else it takes names from the panels, as a single-user server)."""
        return self.source != "open"

    def allows(self, role: str) -> bool:
        return role in self.may

    @property
    def expertise_level(self) -> str:
        """``expert`` or ``non-expert``, as the panels spell it (an account without expertise counts as non-expert,
        as the server weighs its labels)."""
        return "expert" if self.expertise == "expert" else "non-expert"

    def describe(self) -> str:
        """Two lines for the Connection panel: who, and what the role allows."""
        if not self.signed_in:
            return (
                "Sign-in is off on this server (one user on its own computer): everything is allowed, and labels "
                "are recorded under the name typed above."
            )
        expertise = self.expertise_level if self.expertise else "no expertise recorded"
        allowed = [ROLE_ADDS[r] for r in ROLES if r in self.may and r in ROLE_ADDS]
        return (
            f"Signed in as {self.name} ({self.role}, {expertise}; {SOURCES.get(self.source, self.source)}).\n"
            f"This account may {'; '.join(allowed)}."
        )

    def needs(self, role: str) -> str:
        """Why something is off for this account: which role it needs and which one the account has."""
        return f"needs the {role} role; your account {self.name!r} is {self.role}"


def role_refusal_note(account: Account, refused: Dict[str, List[str]]) -> str:
    """One sentence per missing role naming what the account cannot do here, e.g. ``{"reviewer": ["accept a
    version", "build a consensus"]}``; empty when nothing is refused."""
    sentences = [
        f"To {' or '.join(actions)} an account needs the {role} role; yours ({account.name}) is {account.role}."
        for role, actions in refused.items()
        if actions
    ]
    return " ".join(sentences)

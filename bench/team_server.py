"""A team server for tests and benchmarks: a real server on loopback with local accounts (annotators, a reviewer,
an admin, a revoked one)."""

import os
import shutil

import requests

from cmrassist_server.accounts.store import AccountStore
from cmrassist_server.launcher import RunningServer

ACCOUNTS = {
    "annotator": ("Ann", "annotator", "non_expert"),
    "expert": ("Dr Expert", "annotator", "expert"),
    "reviewer": ("Rev", "reviewer", "expert"),
    "admin": ("Adm", "admin", None),
    "revoked": ("Gone", "annotator", "expert"),
}


class Team:
    """The server, its tokens by role, and a helper that calls it as one of them."""

    def __init__(self, server, tokens):
        self.server, self.tokens, self.url = server, tokens, server.url

    def call(self, who, method, path, **kw):
        headers = dict(kw.pop("headers", {}))
        if who in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        elif who is not None:
            headers["Authorization"] = f"Bearer {who}"
        return requests.request(method, self.url + path, headers=headers, timeout=120, **kw)


def make_team(studies_from, root, name="team"):
    studies = str(root / f"{name}_studies")
    shutil.copytree(studies_from, studies, ignore=shutil.ignore_patterns(".cmrassist"))
    os.makedirs(f"{studies}/.cmrassist", exist_ok=True)
    store = AccountStore(f"{studies}/.cmrassist/users.sqlite")
    tokens = {key: store.add(*spec) for key, spec in ACCOUNTS.items()}
    store.revoke("Gone")
    server = RunningServer(studies, str(root / f"{name}_model"), str(root / f"{name}.log"))
    return Team(server, tokens)

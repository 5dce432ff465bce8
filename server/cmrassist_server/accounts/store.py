"""Local accounts in SQLite beside the datastore (``<studies>/.cmrassist/users.sqlite``): name, role, expertise
and an API token stored only as a bcrypt hash; ``cmrassist users add|list|revoke|rotate`` manage them.

A token is ``cmra_<account id>_<secret>``: the id finds the row, bcrypt checks the secret. A verified token is
remembered (by its SHA-256) so later requests cost one indexed read, which also notices a revocation or rotation.
"""

import hashlib
import secrets
import sqlite3
import time
from typing import Dict, List, Optional, Tuple

import bcrypt

from cmrassist_server.accounts.roles import Account, check_expertise, check_role
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.sqlite import SQLiteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, expertise TEXT,
    token_hash BLOB NOT NULL, created REAL NOT NULL, revoked REAL);
"""
PREFIX = "cmra"
#: bcrypt's limit on what it hashes (it raises beyond); tokens are 50 bytes.
MAX_TOKEN_BYTES = 72


class AccountStore:
    """The local account store.

    Args:
        path: the SQLite file (created when missing).
    """

    def __init__(self, path: str):
        self.path = path
        self._file = SQLiteFile(path)
        self._verified: Dict[str, Tuple[str, bytes]] = {}  # sha256(token) -> (account id, token hash)
        with self._db() as db:
            db.executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return self._file.connection()

    # -- management (the CLI) ----------------------------------------------------------------------------------
    def add(self, name: str, role: str, expertise: Optional[str]) -> str:
        """Create an account; returns its API token (shown once, stored only hashed)."""
        name = (name or "").strip()
        if not name or len(name) > 128:
            raise CMRAssistError("an account needs a name of 1 to 128 characters", 422)
        account_id, token = _new_token()
        try:
            self._db().execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (account_id, name, check_role(role), check_expertise(expertise), _hash(token), time.time()),
            )
        except sqlite3.IntegrityError:
            raise CMRAssistError(f"an account named {name!r} exists already (rotate its token instead)", 409) from None
        return token

    def rotate(self, name: str) -> str:
        """A new token for ``name``; the old one stops working at once."""
        row = self._row(name)
        _, token = _new_token(row["id"])
        self._db().execute("UPDATE accounts SET token_hash=?, revoked=NULL WHERE id=?", (_hash(token), row["id"]))
        return token

    def revoke(self, name: str) -> None:
        self._db().execute("UPDATE accounts SET revoked=? WHERE id=?", (time.time(), self._row(name)["id"]))

    def list(self) -> List[Dict]:
        rows = self._db().execute("SELECT name, role, expertise, created, revoked FROM accounts ORDER BY name")
        return [dict(r) for r in rows]

    def active_count(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM accounts WHERE revoked IS NULL").fetchone()[0])

    def _row(self, name: str) -> sqlite3.Row:
        row = self._db().execute("SELECT * FROM accounts WHERE name=?", (name,)).fetchone()
        if row is None:
            raise CMRAssistError(f"no account named {name!r}", 404)
        return row

    # -- sign-in -----------------------------------------------------------------------------------------------
    def verify(self, token: str) -> Optional[Account]:
        """The account of a valid, unrevoked token; ``None`` otherwise."""
        parts = token.split("_")
        # bcrypt takes at most 72 bytes (it raises beyond): no token this store made is that long.
        if len(parts) != 3 or parts[0] != PREFIX or len(token.encode()) > MAX_TOKEN_BYTES:
            return None
        row = self._db().execute("SELECT * FROM accounts WHERE id=?", (parts[1],)).fetchone()
        if row is None or row["revoked"] is not None:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        if self._verified.get(key) != (row["id"], bytes(row["token_hash"])):
            if not bcrypt.checkpw(token.encode(), bytes(row["token_hash"])):
                return None
            self._verified[key] = (row["id"], bytes(row["token_hash"]))
        return Account(name=row["name"], role=row["role"], expertise=row["expertise"], source="local")


def _new_token(account_id: Optional[str] = None) -> Tuple[str, str]:
    account_id = account_id or secrets.token_hex(6)
    return account_id, f"{PREFIX}_{account_id}_{secrets.token_urlsafe(24).replace('_', '-')}"


def _hash(token: str) -> bytes:
    return bcrypt.hashpw(token.encode(), bcrypt.gensalt(rounds=10))

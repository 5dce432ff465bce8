"""Local accounts: tokens shown once and stored only hashed, revoked and rotated at once; the audit log only grows."""

import sqlite3

import pytest

from cmrassist_server.accounts.audit import AuditLog
from cmrassist_server.accounts.roles import Account
from cmrassist_server.accounts.store import AccountStore
from cmrassist_server.core.errors import CMRAssistError


def test_a_token_signs_in_its_account_until_revoked_or_rotated(tmp_path):
    store = AccountStore(str(tmp_path / "users.sqlite"))
    token = store.add("Dr Müller", "reviewer", "expert")
    assert store.verify(token) == Account("Dr Müller", "reviewer", "expert", "local")
    assert store.verify(token) == Account("Dr Müller", "reviewer", "expert", "local")  # the remembered path
    assert token.encode() not in (tmp_path / "users.sqlite").read_bytes()  # only its bcrypt hash is stored
    assert store.verify(token[:-1] + ("x" if token[-1] != "x" else "y")) is None
    assert store.verify("cmra_nosuchid_secret") is None and store.verify("Bearer nonsense") is None
    new = store.rotate("Dr Müller")
    assert store.verify(token) is None and store.verify(new).name == "Dr Müller"
    store.revoke("Dr Müller")
    assert store.verify(new) is None and store.active_count() == 0
    assert [r["name"] for r in store.list()] == ["Dr Müller"]


@pytest.mark.parametrize(
    "name, role, expertise, status",
    [("", "annotator", None, 422), ("x", "owner", None, 422), ("x", "annotator", "guru", 422)],
)
def test_bad_accounts_are_refused(tmp_path, name, role, expertise, status):
    with pytest.raises(CMRAssistError) as refused:
        AccountStore(str(tmp_path / "u.sqlite")).add(name, role, expertise)
    assert refused.value.status == status


def test_names_are_unique_and_roles_rank(tmp_path):
    store = AccountStore(str(tmp_path / "u.sqlite"))
    store.add("王医生", "annotator", "non_expert")
    with pytest.raises(CMRAssistError) as twice:
        store.add("王医生", "admin", None)
    assert twice.value.status == 409
    reviewer = Account("r", "reviewer")
    assert reviewer.allows("annotator") and reviewer.allows("user") and not reviewer.allows("admin")


def test_the_audit_log_only_grows(tmp_path):
    log = AuditLog(str(tmp_path / "audit.sqlite"))
    log.append(
        "Dr A", "version_accepted", target="img1", role="reviewer", details={"version": "ann"}, address="127.0.0.1"
    )
    log.append("Dr A", "cut_points_set", role="reviewer")
    entries = log.read()
    assert [e["action"] for e in entries] == ["version_accepted", "cut_points_set"]
    assert entries[0]["details"] == {"version": "ann"} and entries[0]["address"] == "127.0.0.1"
    db = sqlite3.connect(str(tmp_path / "audit.sqlite"))
    for statement in ("UPDATE audit SET actor='x'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(statement)
    assert len(AuditLog(str(tmp_path / "audit.sqlite")).read()) == 2

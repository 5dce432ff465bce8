"""``cmrassist users add|list|revoke|rotate``: the local accounts of a studies folder."""

import getpass
import os
import sys

from cmrassist_server.accounts.audit import AuditLog
from cmrassist_server.accounts.roles import ROLES
from cmrassist_server.accounts.store import AccountStore


def state_dir(studies: str, model_dir: str) -> str:
    """Where a server keeps its state: beside a local datastore, in the model folder for a DICOMweb one."""
    remote = studies.startswith(("http://", "https://"))
    return os.path.join(model_dir if remote else studies, "" if remote else ".cmrassist")


def _open(args):
    folder = state_dir(args.studies, args.model_dir)
    os.makedirs(folder, exist_ok=True)
    return AccountStore(os.path.join(folder, "users.sqlite")), AuditLog(os.path.join(folder, "audit.sqlite"))


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def cmd_users(args) -> int:
    store, audit = _open(args)
    if args.action == "list":
        for row in store.list():
            state = "revoked" if row["revoked"] else "active"
            print(f"{row['name']:24s} {row['role']:10s} {row['expertise'] or '-':11s} {state}")
        return 0
    if not args.name:
        raise ValueError(f"users {args.action} needs the account name")
    if args.action == "add":
        token = store.add(args.name, args.role, args.expertise)
        audit.append(
            _actor(), "account_added", target=args.name, details={"role": args.role, "expertise": args.expertise}
        )
    elif args.action == "rotate":
        token = store.rotate(args.name)
        audit.append(_actor(), "account_token_rotated", target=args.name)
    else:
        store.revoke(args.name)
        audit.append(_actor(), "account_revoked", target=args.name)
        print(f"{args.name}: revoked (their token no longer works)")
        return 0
    print(f"API token of {args.name} (shown once; the server keeps only its hash):", file=sys.stderr)
    print(token)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("users", help="local accounts of a studies folder: add, list, revoke, rotate")
    p.add_argument("action", choices=["add", "list", "revoke", "rotate"])
    p.add_argument("name", nargs="?", help="account name (recorded as the annotator or reviewer)")
    p.add_argument("--studies", required=True, help="the studies folder the server serves (or its DICOMweb URL)")
    p.add_argument("--model-dir", default=os.path.join("server", "model"), help="with a DICOMweb URL: its model folder")
    p.add_argument("--role", default="annotator", choices=list(ROLES[1:]))
    p.add_argument("--expertise", default=None, choices=["expert", "non_expert"], help="how their labels weigh")
    p.set_defaults(func=cmd_users)

"""Sign-in without a server: the token in Slicer's settings (per server, owner-only file, never in a repr), the
account's roles as the panels read them, refusals in the user's words, and the role gate's buttons and note."""

import os
import stat

from PySide6.QtWidgets import QPushButton

from CMRAssistLib.account import Account
from CMRAssistLib.settings import UserSettings, load_settings, load_token, remembers_tokens, save_settings
from CMRAssistLib.transport import refusal
from CMRAssistLib.widgets import RoleGate

TOKEN = "cmra_0123456789ab_s3cret-Value"
URL = "http://127.0.0.1:8000"


def test_the_token_is_kept_for_its_own_server_in_an_owner_only_file(store):
    save_settings(UserSettings(URL + "/", "Dr Ada", "expert", TOKEN), store)
    saved = load_settings(store)
    assert saved.token == TOKEN and saved.server_url == URL + "/"
    assert load_token(store, "127.0.0.1:8000") == TOKEN  # the same server, however it is typed
    assert load_token(store, "http://10.0.0.7:8000") == ""  # never offered to another server
    assert stat.S_IMODE(os.stat(store.fileName()).st_mode) == 0o600
    assert TOKEN not in repr(saved) and TOKEN not in str(saved)
    # Not remembered: gone from the settings file, and the choice itself is remembered.
    save_settings(UserSettings(URL, "Dr Ada", "expert", TOKEN), store, remember_token=False)
    assert load_settings(store).token == "" and not remembers_tokens(store)
    with open(store.fileName()) as f:
        assert TOKEN not in f.read()


def test_an_account_from_auth_me_says_what_it_may_do():
    annotator = Account.from_me(
        {
            "name": "Dr A",
            "role": "annotator",
            "expertise": "non_expert",
            "source": "local",
            "may": ["user", "annotator"],
        }
    )
    assert annotator.signed_in and annotator.allows("annotator") and not annotator.allows("reviewer")
    assert annotator.expertise_level == "non-expert"
    text = annotator.describe()
    assert text.startswith("Signed in as Dr A (annotator, non-expert; local account).")
    assert "submit labels and rank slices" in text and "accept label versions" not in text
    reviewer = Account.from_me({"name": "Dr R", "role": "reviewer", "expertise": None, "source": "oidc"})
    assert reviewer.may == ["user", "annotator", "reviewer"] and "no expertise recorded" in reviewer.describe()
    opened = Account.from_me({"name": "local user", "role": "admin", "source": "open", "auth": False})
    assert not opened.signed_in and opened.allows("admin") and "Sign-in is off" in opened.describe()


def test_refusals_say_sign_in_or_which_role_is_needed():
    url = "http://lab:8000"
    no_token = refusal("GET", "/info/", 401, "sign in first", server_url=url, signed=False)
    assert no_token.startswith("sign in: the server at http://lab:8000 needs an API token")
    bad = refusal("GET", "/auth/me", 401, "the token is invalid, expired or revoked", server_url=url, signed=True)
    assert bad == "sign in: the server at http://lab:8000 did not accept your API token: the token is invalid, " + (
        "expired or revoked"
    )
    role = refusal("POST", "/versions/p1_ed/accept", 403, "this needs the reviewer role", server_url=url, signed=True)
    assert role == "your role cannot accept label versions: this needs the reviewer role"
    assert refusal("DELETE", "/train/", 403, "Role/Resource not authorized", server_url=url, signed=True).startswith(
        "your role cannot stop training"
    )
    assert refusal("GET", "/x", 404, "no such thing", server_url=url, signed=True) == (
        "server refused GET /x (404): no such thing"
    )


def test_the_role_gate_turns_off_what_the_role_cannot_do_and_says_why(app):
    accept, submit = QPushButton("Accept"), QPushButton("Submit")
    accept.toolTip = "Make the selected version the final label"
    gate = RoleGate()
    gate.add(accept, "reviewer", "accept a version")
    gate.add(submit, "annotator", "submit labels")
    accept.enabled = submit.enabled = True
    gate.apply()  # no sign-in: everything allowed, nothing said
    assert accept.enabled and submit.enabled and not gate.label.text
    gate.set_account(Account("Dr A", "annotator", "expert", "local", ["user", "annotator"]))
    assert submit.enabled and not accept.enabled
    assert accept.toolTip.startswith("Make the selected version the final label")
    assert "Off: needs the reviewer role; your account 'Dr A' is annotator." in accept.toolTip
    assert gate.label.text == "To accept a version an account needs the reviewer role; yours (Dr A) is annotator."
    gate.set_account(Account("Dr R", "reviewer", "expert", "local", ["user", "annotator", "reviewer"]))
    accept.enabled = True
    gate.apply()
    assert accept.enabled and accept.toolTip == "Make the selected version the final label" and not gate.label.text

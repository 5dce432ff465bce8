"""OIDC sign-in against a JWKS served over HTTP by the test, with a key pair the test makes."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cmrassist_server.accounts.oidc import OIDCSettings, OIDCVerifier
from cmrassist_server.core.errors import CMRAssistError

ISSUER, AUDIENCE = "https://idp.example/realms/cardiac", "cmrassist"


class Provider:
    """A key pair, its JWKS on a loopback port, and tokens signed with it."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()
        self.requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                provider.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self.server.server_port}/certs"

    def token(self, key=None, **claims):
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": now + 300,
            "iat": now,
            "preferred_username": "dr.who",
            "roles": ["cmr-reviewer"],
            "expertise": "expert",
            **claims,
        }
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def provider():
    p = Provider()
    yield p
    p.server.shutdown()


def verifier(provider):
    return OIDCVerifier(OIDCSettings(ISSUER, AUDIENCE, provider.jwks_url, role_map="cmr-reviewer=reviewer"))


def test_a_valid_token_gives_the_account_from_its_claims_and_keys_are_cached(provider):
    check = verifier(provider)
    account = check.verify(provider.token())
    assert (account.name, account.role, account.expertise, account.source) == ("dr.who", "reviewer", "expert", "oidc")
    before = provider.requests
    for _ in range(5):
        assert check.verify(provider.token()) is not None
    assert provider.requests == before  # no network call per request


@pytest.mark.parametrize(
    "claims", [{"exp": int(time.time()) - 3600}, {"aud": "someone-else"}, {"iss": "https://evil.example"}]
)
def test_expired_foreign_audience_or_issuer_tokens_are_refused(provider, claims):
    assert verifier(provider).verify(provider.token(**claims)) is None


def test_a_token_signed_by_another_key_or_tampered_is_refused(provider):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert verifier(provider).verify(provider.token(key=other)) is None
    head, body, sig = provider.token().split(".")
    assert verifier(provider).verify(".".join([head, body[:-2] + "AA", sig])) is None
    assert verifier(provider).verify("not.a.jwt") is None


def test_a_valid_token_without_a_role_of_this_server_is_forbidden(provider):
    with pytest.raises(CMRAssistError) as refused:
        verifier(provider).verify(provider.token(roles=["billing"]))
    assert refused.value.status == 403


def test_roles_and_expertise_from_nested_claims(provider):
    check = OIDCVerifier(
        OIDCSettings(
            ISSUER,
            AUDIENCE,
            provider.jwks_url,
            roles_claim="realm_access.roles",
            expertise_claim="cmr.expertise",
            role_map="staff=annotator,chief=admin",
        )
    )
    token = provider.token(realm_access={"roles": ["staff", "chief"]}, cmr={"expertise": "non-expert"})
    account = check.verify(token)
    assert account.role == "admin" and account.expertise == "non_expert"

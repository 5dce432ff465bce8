"""OIDC sign-in against a JWKS served over HTTP by the test, with a key pair the test makes."""

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from oidc_provider import AUDIENCE, ISSUER, Provider

from cmrassist_server.accounts.oidc import OIDCSettings, OIDCVerifier
from cmrassist_server.core.errors import CMRAssistError


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

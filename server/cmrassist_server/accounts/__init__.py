"""Who is calling: local accounts with API tokens, OIDC bearer tokens, their roles and expertise, and the audit
log of every change they make.
"""

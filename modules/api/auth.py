"""--api-auth: HTTP Basic credentials, read from the header and compared in constant time. The check itself
runs in modules/api/http_guards.py, before any of a request's body is read."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence

from fastapi.security import HTTPBasic

# Declares Basic auth in the API's schema (/docs shows "Authorize"); it checks nothing itself.
schema_declaration = HTTPBasic(auto_error=False)


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The (user, password) of an `Authorization: Basic …` header; None when absent or malformed."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


def credentials_match(user: str, password: str, accounts: Sequence[tuple[str, str]]) -> bool:
    """True when the user and password match an account; every account and both parts are compared,
    so the time taken tells nothing about which part was wrong."""
    found = False
    for account_user, account_password in accounts:
        found |= _same(user, account_user) & _same(password, account_password)
    return found

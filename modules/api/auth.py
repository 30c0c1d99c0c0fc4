"""--api-auth: HTTP Basic on every API route, compared in constant time."""
from __future__ import annotations

import secrets
from typing import Callable

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

_basic = HTTPBasic(auto_error=False)


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def credentials_match(given: HTTPBasicCredentials, accounts: list[tuple[str, str]]) -> bool:
    """True when the user and password match an account; every account and both parts are compared,
    so the time taken tells nothing about which part was wrong."""
    found = False
    for user, password in accounts:
        found |= _same(given.username, user) & _same(given.password, password)
    return found


def basic_auth(accounts: list[tuple[str, str]]) -> Callable[..., None]:
    """A FastAPI dependency that answers 401 (asking for Basic auth) unless one of `accounts` is given."""
    def check(given: HTTPBasicCredentials | None = Depends(_basic)) -> None:
        if given is None or not credentials_match(given, accounts):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Incorrect username or password",
                                headers={"WWW-Authenticate": "Basic"})
    return check

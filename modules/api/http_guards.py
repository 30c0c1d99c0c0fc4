"""The checks every HTTP request passes before the app reads its body: the API login (HTTP Basic), the page
login (a Gradio session cookie, for requests that carry a body), throttled failed logins, and the request
body cap (max_request_bytes, 413 beyond). Refusals never read or echo the body."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modules.api.auth import basic_credentials, credentials_match
from modules.api.errors import error_response
from modules.api.login_throttle import LoginThrottle, retry_after

API_PREFIX = "/sdapi/"
PAGE_LOGIN_PATHS = ("/login", "/login/")  # Gradio's login form: 200 when right, 400 when wrong
PAGE_LOGIN_REFUSED = 400
LOGIN_FORM_MAX_BYTES = 64 * 1024  # a user name and a password: the login form needs no more

SessionCheck = Callable[[Request], bool]  # does the request carry a valid page session?


class _Limit(NamedTuple):
    """The largest body a request may have, and why."""

    size: int
    reason: str

    def refusal(self) -> Response:
        message = f"The request body is larger than {self.size:,} bytes ({self.reason})"
        return error_response(413, "RequestTooLarge", message, message, headers={"Connection": "close"})


class RequestTooLarge(Exception):
    """Raised to the app when a body grows past the cap while it is read."""


class RequestGuard:
    """ASGI middleware. `api_accounts`: the --api-auth logins for /sdapi/ routes (none: open);
    `page_session`: tells whether a request is logged in to the page (None: the page has no login);
    `max_body`: the largest body in bytes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        api_accounts: Sequence[tuple[str, str]] = (),
        page_session: SessionCheck | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.api_accounts = list(api_accounts)
        self.page_session = page_session
        self.api_logins = LoginThrottle()
        self.page_logins = LoginThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)  # headers and cookies only: the body stays unread here
        login = self.page_session is not None and _is_page_login(request)
        limit = (
            _Limit(LOGIN_FORM_MAX_BYTES, "a login needs no more")
            if login
            else _Limit(self.max_body, "setting max_request_bytes")
        )
        refusal = self._refusal(request, login, limit)
        if refusal is not None:
            if _has_body(request):  # unread: the connection can't carry another request
                refusal.headers["Connection"] = "close"
            await refusal(scope, receive, send)
            return
        body = _CappedBody(receive, send, limit, unread=_has_body(request))
        if login:
            body.on_status = lambda status: self._page_login_answered(_address(request), status)
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.exceeded:
                raise
        if body.exceeded:
            await body.answer_too_large(scope)

    def _refusal(self, request: Request, login: bool, limit: _Limit) -> Response | None:
        if request.scope["path"].startswith(API_PREFIX):  # the API's own login, or none: never the page's
            refusal = self._api_login_refusal(request) if self.api_accounts else None
            if refusal is not None:
                return refusal
        elif login:
            wait = self.page_logins.wait_left(_address(request))
            if wait > 0:
                return _too_many_failures(wait)
        elif self.page_session is not None and _has_body(request) and not self.page_session(request):
            return error_response(401, "Unauthorized", "Log in to the page first (POST /login)", "Not authenticated")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit.size:
            return limit.refusal()
        return None

    def _api_login_refusal(self, request: Request) -> Response | None:
        address = _address(request)
        wait = self.api_logins.wait_left(address)
        if wait > 0:
            return _too_many_failures(wait)
        given = basic_credentials(request.headers.get("authorization"))
        if given is not None and credentials_match(*given, self.api_accounts):
            self.api_logins.succeeded(address)
            return None
        if given is not None:
            self.api_logins.failed(address)
        return error_response(
            401,
            "Unauthorized",
            "Incorrect username or password",
            "Incorrect username or password",
            headers={"WWW-Authenticate": "Basic"},
        )

    def _page_login_answered(self, address: str, status: int) -> None:
        if status == 200:
            self.page_logins.succeeded(address)
        elif status == PAGE_LOGIN_REFUSED:
            self.page_logins.failed(address)


class _CappedBody:
    """Counts the body as the app reads it: past `limit`, the read raises RequestTooLarge and whatever the
    app answers then is replaced by a 413. An answer sent before the whole body was read closes the
    connection, so the server doesn't go on receiving the rest only to drop it."""

    def __init__(self, receive: Receive, send: Send, limit: _Limit, unread: bool) -> None:
        self._receive, self._send, self.limit, self.unread = receive, send, limit, unread
        self.size = 0
        self.exceeded = False
        self.started = False
        self.on_status: Callable[[int], None] | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.unread = message.get("more_body", False)
            self.size += len(message.get("body", b""))
            if self.size > self.limit.size:
                self.exceeded = True
                raise RequestTooLarge(f"the request body is over {self.limit.size:,} bytes")
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded:
            return  # the 413 goes out once the app is done
        if message["type"] == "http.response.start":
            self.started = True
            if self.on_status is not None:
                self.on_status(message["status"])
            if self.unread:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await self._send(message)

    async def answer_too_large(self, scope: Scope) -> None:
        if not self.started:
            await self.limit.refusal()(scope, self._receive, self._send)


def _too_many_failures(wait: float) -> Response:
    seconds = retry_after(wait)
    message = f"Too many failed logins from this address: try again in {seconds} s"
    return error_response(429, "TooManyFailedLogins", message, message, headers={"Retry-After": seconds})


def _is_page_login(request: Request) -> bool:
    return request.method == "POST" and request.scope["path"] in PAGE_LOGIN_PATHS


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"

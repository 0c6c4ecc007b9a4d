"""Who may use the UI, and what keeps a page from being turned against its user.

- :class:`Credentials`: HTTP basic auth (a user and a password), a bearer
  token, or both; :class:`AuthMiddleware` asks for them on every request
  when any is configured. A browser logs in with the token too: as the
  password of any user name, since a browser cannot send a bearer header.
- :func:`check_address`: ``bridge ui`` listens on loopback only, unless
  credentials are configured.
- CSRF: every action is a POST carrying ``csrf_token``, a random token kept
  in the user's session. The session is Starlette's cookie session, signed
  with itsdangerous (HMAC) under the app's secret (random per process unless
  given), so a page on another origin can neither read the token (same-origin
  policy) nor forge a session holding one it chose (no secret); the cookie
  is ``SameSite=Strict`` on top. This needs no server-side store, so the
  same app mounted in several worker processes works when they are given
  one ``secret``.
- :class:`ReadOnlyMiddleware`: in read-only mode every request but GET and
  HEAD answers 403 before any route runs.
- :class:`HeadersMiddleware`: a content security policy allowing only the
  UI's own script and style, no framing (a click on an action button cannot
  be hijacked from another page), no MIME sniffing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.errors import ConfigurationError
from bridge.settings import load_ui_settings

CSRF_FIELD = "csrf_token"
_CSRF_KEY = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class Credentials:
    """What a request must carry: basic auth ``user``/``password``, or ``token``."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            raise ConfigurationError(
                "the UI's basic auth needs both a user and a password "
                "(BRIDGE_UI_USER and BRIDGE_UI_PASSWORD, or --user and --password)"
            )
        for what, value in (
            ("user", self.user),
            ("password", self.password),
            ("token", self.token),
        ):
            if value == "":
                raise ConfigurationError(f"the UI's {what} must not be empty")

    @classmethod
    def from_settings(cls) -> Credentials:
        """From ``BRIDGE_UI_USER``/``BRIDGE_UI_PASSWORD``/``BRIDGE_UI_TOKEN`` (or celeryconfig)."""
        settings = load_ui_settings()
        return cls(settings.user, settings.password, settings.token)

    @property
    def configured(self) -> bool:
        return self.password is not None or self.token is not None

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries these credentials."""
        if not self.configured:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return self.token is not None and _same(value, self.token)
        if scheme.lower() != "basic":
            return False
        try:
            user, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not colon:
            return False
        if self.token is not None and _same(password, self.token):
            return True
        if self.user is None or self.password is None:
            return False
        # Both compared, always: the time taken says nothing about which was wrong.
        right_user = _same(user, self.user)
        right_password = _same(password, self.password)
        return right_user and right_password


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``), reachable from this host only."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(host: str, credentials: Credentials) -> None:
    """Refuse a non-loopback address without credentials: anyone reaching it could act."""
    if is_loopback(host) or credentials.configured:
        return
    raise ConfigurationError(
        f"refusing to serve the queue UI on {host} without credentials: anyone who can "
        "reach it could delete queues. Set BRIDGE_UI_USER and BRIDGE_UI_PASSWORD, or "
        "BRIDGE_UI_TOKEN (or --user/--password, --token), or listen on 127.0.0.1"
    )


class AuthMiddleware:
    """401 with a basic-auth challenge for a request without the credentials.

    Shared by the UI and ``bridge serve``: the API names its own realm, also
    takes the token from ``token_header`` (Zaqar's ``X-Auth-Token``) and
    answers with its own error document (``refusal``).
    """

    def __init__(
        self,
        app: ASGIApp,
        credentials: Credentials,
        realm: str = "bridge queue UI",
        token_header: str | None = None,
        refusal: Callable[[], Response] | None = None,
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.realm = realm
        self.token_header = token_header
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.credentials.configured:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        token = headers.get(self.token_header) if self.token_header else None
        if self.credentials.allows(headers.get("authorization")) or (
            token and self.credentials.allows(f"Bearer {token}")
        ):
            await self.app(scope, receive, send)
            return
        if self.refusal is not None:
            response = self.refusal()
        else:
            response = PlainTextResponse(
                "Credentials needed: the UI's user and password, or its token.\n",
                status_code=401,
            )
        response.headers["WWW-Authenticate"] = f'Basic realm="{self.realm}", charset="UTF-8"'
        await response(scope, receive, send)


class ReadOnlyMiddleware:
    """403 for every request that could change something, before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            response = PlainTextResponse(
                "The queue UI is read-only: no action is allowed.\n", status_code=403
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class HeadersMiddleware:
    """Security headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
            await send(message)

        await self.app(scope, receive, with_headers)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[_CSRF_KEY] = token
    return token


def csrf_valid(request: Request, given: object) -> bool:
    """Whether a form's token is the session's: compared in constant time."""
    expected = request.session.get(_CSRF_KEY)
    if not isinstance(expected, str) or not isinstance(given, str) or not given:
        return False
    return _same(given, expected)

"""Backend URLs: the scheme that picks a backend, and the form safe to print."""

from __future__ import annotations

from bridge.errors import UnknownBackendError


def scheme_of(url: str) -> str:
    """The backend part of a URL's scheme: ``postgresql+psycopg://`` gives ``postgresql``."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise UnknownBackendError(
            f"{url!r} is not a backend URL; expected SCHEME://..., such as "
            "sqlite:///bridge.sqlite or memory://"
        )
    return scheme.split("+", 1)[0].lower()


def mask_password(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and listings."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}"
    return f"{scheme}://{netloc}{slash}{path}"

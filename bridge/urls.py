"""Backend URLs: the scheme that picks a backend, and the form safe to print."""

from __future__ import annotations

import re

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


_SECRET_KEY = re.compile(r"pass|secret|token|credential", re.IGNORECASE)
"""Query parameters whose values are hidden: ``?password=``, ``?secret_key=``, ``?token=``."""


def mask_password(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and listings.

    For an ordinary URL this is SQLAlchemy's
    ``make_url(url).render_as_string(hide_password=True)``, but it also holds
    where that one leaks: the password may hold ``/`` or ``@`` unescaped (the
    userinfo ends at the last ``@``, as people write such URLs), and query
    parameters that carry secrets (``?password=``) are hidden too. Any scheme
    is masked (``amqp://``, ``redis://``, ``sqs://``), and a part that cannot
    be told apart from a password is hidden rather than printed.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = _userinfo_end(rest)
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        if colon:
            rest = f"{user}:***{rest[at:]}"
            at = len(user) + 4
    path, question, query = rest[at + 1 :].partition("?")
    if question:
        params = []
        for param in query.split("&"):
            key, equals, value = param.partition("=")
            hidden = equals and value and _SECRET_KEY.search(key)
            params.append(f"{key}=***" if hidden else param)
        rest = f"{rest[: at + 1]}{path}?{'&'.join(params)}"
    return f"{scheme}://{rest}"


def _userinfo_end(rest: str) -> int:
    """Where the ``@`` that ends the userinfo is in ``rest`` (after ``://``); -1 if none."""
    if rest.startswith("/"):  # no authority: sqlite:////path, filesystem:///
        return -1
    at = rest.rfind("@")
    query = rest.find("?")
    if 0 <= query < at and "=" in rest[query:at]:
        # That '@' is inside a query value (?user=a@b): the userinfo, if any, is before it.
        at = rest.rfind("@", 0, query)
    return at

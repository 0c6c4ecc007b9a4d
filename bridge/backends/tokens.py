"""What the RabbitMQ backend modules share: claim tokens and the creation header.

A broker lets only the connection that received a message settle it, so a
token names the backend object that issued it: a backend can then tell a
claim of its own that it has since lost (the call returns False) from a claim
made through another connection or process (an explicit error).
"""

from __future__ import annotations

import secrets

CREATED_HEADER = "bridge-created"
"""Message header (AMQP) or attribute (SQS) holding the creation time, epoch seconds."""


def new_token(owner: str) -> str:
    """A claim token naming the backend object that issued it.

    ``owner`` lets a backend tell a claim of its own that it has since lost
    (the call returns False) from a claim made through another connection
    or process, which no broker lets it settle (an explicit error).
    """
    return f"{owner}.{secrets.token_hex(8)}"


def token_owner(token: str) -> str:
    """The ``owner`` part of a token from :func:`new_token` ("" for a peeked item's)."""
    return token.rpartition(".")[0]

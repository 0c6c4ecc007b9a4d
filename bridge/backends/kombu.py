"""Queues on a message broker through Kombu: RabbitMQ (AMQP 0-9-1) and Amazon SQS.

For teams whose queues already live on a broker. One item is one message.
``KombuBackend(url, **options)`` picks the implementation from the
transport in the URL: ``AmqpBackend`` (``kombu_amqp.py``) or ``SqsBackend``
(``kombu_sqs.py``); what each transport really does is tabled in
``kombu_transports.py`` and set out in ``docs/kombu.md``.

Features:
    RabbitMQ: reliable and shared (durable queues, persistent messages,
    transactional publishes, so ``create_items`` writes all or none). Claims
    are single-message ``basic.get`` fetches, never a consumer (which would
    make RabbitMQ push every ready message to one client). The lease is
    emulated (below); ``extend_lease`` is local; priority with the
    ``max_priority`` option; no delay (RabbitMQ has none without a plugin,
    and its TTL and dead-letter emulations cannot be counted, released or
    deleted per queue); counts see ready messages and this backend's own
    claims, not other processes' (``counts_leased=False``).

    SQS: reliable and shared; the lease is the visibility timeout, set by the
    receive itself, so it is exact (to SQS's whole seconds) even if the
    claimer dies; ``extend_lease`` and ``release_item`` are
    ``ChangeMessageVisibility``; delays up to 900 s at creation; counts
    include in-flight and delayed messages (SQS's approximate counters).

The lease on RabbitMQ is emulated; precisely:
    A claimed message is an unacknowledged delivery on the claiming
    backend's connection. The broker gives it to nobody else while that
    connection lives, and the backend keeps the lease deadline itself.

    (a) The lease runs out while the claiming process lives: nothing happens
    on its own (no thread watches the clock). The holder may still delete,
    release or extend the item until it is claimed again, as with Drupal.
    Expired leases go back to the broker, requeued at their old place, when
    that backend next claims from the queue (as many as the claim asks for,
    so the others stay with their holder), on ``garbage_collection`` (all of
    them; ``process_queue`` and ``run_cron`` begin with it), on
    ``release_all`` and when the backend closes; from then on any process
    may claim them. Another process therefore sees an expired lease only
    once the holding process next touches the queue: ``lease="emulated"``.

    (b) The claiming process dies, or its connection is lost: RabbitMQ
    requeues every delivery of that connection at once, marked redelivered,
    whatever was left of the leases; the next claim anywhere gets them.

    RabbitMQ's ``consumer_timeout`` (30 min by default) closes a channel
    holding a delivery older than that and requeues its messages, so a lease
    may not end more than ``max_lease`` seconds after the delivery.

    Only the connection that received a delivery can acknowledge it: delete,
    release and extend work through the claiming backend object only. An
    item claimed elsewhere raises
    :class:`~bridge.errors.UnsupportedOperationError`; a claim of this
    backend that is gone (claimed again after its lease ran out, released,
    or lost with its channel or connection) returns False.

URL format:
    ``kombu+amqp://user:password@host:5672/vhost`` (also ``kombu+amqps://``
    and ``kombu+pyamqp://``): everything after ``kombu+`` goes to
    ``kombu.Connection``. ``kombu+sqs://[KEY:SECRET@][host:port]``: see
    ``kombu_sqs.py``. Kombu's ``sqla+``/``sqlalchemy``, ``filesystem://``
    and ``memory://`` transports are refused, because they lose a crashed
    consumer's messages and never redeliver them; so is ``redis://`` (use
    bridge's own Redis backend) and any transport bridge has not checked.

Options:
    RabbitMQ: ``max_priority``, ``queue_arguments``, ``max_lease``,
    ``connect_timeout``, ``heartbeat``, ``transport_options`` (see
    ``kombu_amqp.py``). SQS: ``region``, ``endpoint_url``, ``is_secure``,
    ``queue_prefix``, ``wait_time``, ``connect_timeout``, ``read_timeout``
    (see ``kombu_sqs.py``). Unknown options are a ConfigurationError.

Storage layout:
    One broker queue per bridge queue, one message per item; see the
    implementation modules.
"""

from __future__ import annotations

import inspect
from typing import Any

from bridge.backends.kombu_transports import split_url
from bridge.contract import Capabilities
from bridge.errors import ConfigurationError
from bridge.urls import mask_password


class KombuBackend:
    """A Kombu broker URL's backend: the implementation its transport needs.

    ``KombuBackend(url, **options)`` returns an ``AmqpBackend`` or an
    ``SqsBackend``; both are subclasses, so the registry needs one name. The
    options are checked against the chosen class, as the registry checks
    every other backend's.
    """

    capabilities: Capabilities
    url: str

    def __new__(cls, url: str, **options: Any) -> KombuBackend:
        if cls is KombuBackend:
            family, _ = split_url(url)
            if family == "sqs":
                from bridge.backends.kombu_sqs import SqsBackend

                cls = SqsBackend
            else:
                from bridge.backends.kombu_amqp import AmqpBackend

                cls = AmqpBackend
        try:
            inspect.signature(cls).bind(url, **options)
        except TypeError as exc:
            raise ConfigurationError(f"bad options for {mask_password(url)}: {exc}") from None
        return super().__new__(cls)

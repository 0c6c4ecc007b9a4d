"""The ceilings for bridge's RabbitMQ backend: kombu on py-amqp with nothing around it.

Two rows, one durable queue each, persistent messages, the same durability
as bridge (which declares durable queues and publishes with
``delivery_mode=2``):

``raw:rabbitmq`` (``RawKombuGet``), the claim ceiling.
    Bridge claims with ``basic.get`` (AMQP's only pull), so this loop does
    exactly that: up to ``batch`` ``Queue.get(no_ack=False)`` calls, then one
    ``basic.ack`` per message (no ``multiple=True``: bridge acks each item it
    deletes, so the ceiling does the same frames). ``bridge / raw`` thus
    measures bridge's layers: the facade, the lease bookkeeping, the claim
    ledger, the check for frames the broker sent unasked, and the
    ``basic.qos`` round trip bridge makes after every delete to learn that
    the channel (and so the ack) is still alive; this loop makes none.

``kombu-consumer:rabbitmq`` (``RawKombuConsumer``), the streaming ceiling.
    A kombu ``Consumer`` (``basic.consume``) with ``prefetch_count`` = batch,
    acking each message in its callback. The broker pushes messages without
    a request per message, which bridge cannot use: its ``claim_items`` is a
    call that must return what it claimed. Reported beside the get loop to
    show what the pull model costs.

Enqueue mirrors bridge's publishing: one kombu ``Producer`` on a channel in
``tx_select`` mode, ``publish`` of the pre-encoded body per message and one
``tx_commit`` per batch (batch 1: a commit per message), all or nothing as in
bridge. Bridge's per-message ``message_id``, creation header and
``mandatory`` flag are left out: they serve its ledger and its
deleted-queue check, not the queue's semantics.

Neither loop decodes the payload: the handler only counts.
"""

from __future__ import annotations

import json
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer, Producer

from benchmarks.systems.base import PAYLOAD, Counter, Drained, System

CONTENT_TYPE = "application/octet-stream"  # bridge's: the body is opaque bytes
IDLE_SECONDS = 0.2


class _RawKombu(System):
    family = "rabbitmq"
    batches = (1, 100)
    queue_name: str

    def __init__(self, url: str) -> None:
        super().__init__(url)
        # heartbeat 0: bridge's default, and nothing here would service one.
        self.connection = Connection(url, connect_timeout=5, heartbeat=0)
        self.connection.connect()
        self.channel: Any = self.connection.channel()
        self.queue = Queue(self.queue_name, durable=True, auto_delete=False)
        self.bound: Any = self.queue(self.channel)
        self.bound.declare()
        self.body = json.dumps(PAYLOAD).encode()
        self.publisher: Any = None
        self.producer: Producer | None = None

    def reset(self) -> None:
        self.bound.declare()
        self.bound.purge()

    def enqueue(self, count: int, batch: int) -> None:
        if self.producer is None:
            # A channel of its own in transaction mode, as bridge publishes.
            self.publisher = self.connection.channel()
            self.publisher.tx_select()
            self.producer = Producer(
                self.publisher, routing_key=self.queue_name, auto_declare=False
            )
        publish, commit = self.producer.publish, self.publisher.tx_commit
        body, name = self.body, self.queue_name
        for start in range(0, count, batch):
            for _ in range(min(batch, count - start)):
                publish(
                    body,
                    routing_key=name,
                    delivery_mode=2,
                    content_type=CONTENT_TYPE,
                    content_encoding="binary",
                )
            commit()

    def remaining(self) -> int:
        # Ready messages only: RabbitMQ counts unacked ones apart, and by the
        # time this is asked every drain has closed, so the broker requeued
        # whatever a drain still held.
        return int(self.channel.queue_declare(queue=self.queue_name, passive=True).message_count)

    def close(self) -> None:
        self.connection.release()


class RawKombuGet(_RawKombu):
    label = "raw kombu get loop"
    queue_name = "raw_bench_get"
    settings = (
        "kombu 5.7/py-amqp, durable queue, persistent messages; drain = up to batch "
        "Queue.get(no_ack=False) then message.ack() each (no multiple=True, no confirm "
        "round trip); enqueue = Producer.publish in tx_select, tx_commit per batch"
    )

    def drain(self, batch: int) -> Drained:
        counter = Counter()
        get = self.bound.get
        while True:
            held = []
            for _ in range(batch):
                message = get(no_ack=False)
                if message is None:
                    break
                held.append(message)
            if not held:
                # basic.get found the queue empty; others ack what they hold.
                return counter.drained()
            for message in held:
                json.loads(message.body)  # what a handler is given, as bridge decodes it
                message.ack()
            counter(len(held))


class RawKombuConsumer(_RawKombu):
    label = "raw kombu consumer"
    queue_name = "raw_bench_consume"
    settings = (
        "kombu 5.7/py-amqp Consumer (basic.consume), prefetch_count = batch (1 or 100), "
        "ack each in on_message, drain_events timeout 0.2 s; stop when no delivery for "
        "0.2 s and passive declare says 0 ready; durable queue, persistent messages; "
        "enqueue as the get loop"
    )

    def drain(self, batch: int) -> Drained:
        counter = Counter()

        def on_message(message: Any) -> None:
            json.loads(message.body)
            message.ack()
            counter()

        consumer = Consumer(
            self.channel,
            queues=[self.queue],
            no_ack=False,
            prefetch_count=batch,
            on_message=on_message,
            auto_declare=False,
        )
        with consumer:
            while True:
                try:
                    self.connection.drain_events(timeout=IDLE_SECONDS)
                except TimeoutError:
                    # Nothing pushed for a while: done if nothing is ready either
                    # (this consumer acks as it goes, so it holds nothing).
                    if self.remaining() == 0:
                        break
        return counter.drained()

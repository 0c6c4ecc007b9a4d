"""The ceilings for bridge's RabbitMQ backend: kombu on py-amqp with nothing around it.

Two rows, one durable queue each, persistent messages, the same durability
as bridge (which declares durable queues and publishes with
``delivery_mode=2``); classic queues, or quorum ones with
``BRIDGE_BENCH_RABBITMQ_QUEUE_TYPE=quorum`` (as bridge's then are):

``raw:rabbitmq`` (``RawKombuGet``), the pull ceiling.
    ``basic.get`` is AMQP's only pull: up to ``batch`` ``Queue.get(no_ack=False)``
    calls, then one ``basic.ack`` per message (no ``multiple=True``: bridge
    acks each item it deletes, so the ceiling does the same frames), acked
    blindly (no commit or other round trip to learn that the ack took).
    bridge fetched every message this way until its claims streamed; it
    still fetches the first message of each claim so (an empty queue
    answers at once).

``kombu-consumer:rabbitmq`` (``RawKombuConsumer``), the streaming ceiling.
    A kombu ``Consumer`` (``basic.consume``) with ``prefetch_count`` = batch,
    acking each message in its callback: the broker pushes the next message
    in answer to each ack. bridge streams the same way (a consumer whose
    prefetch is the claim's count, the next message pushed in answer to the
    settlement of the last in ``settle_and_claim``), but confirms each
    settlement with a commit (a delete returns True only once the broker
    has it) where this loop acks blindly, and hands out only what a claim
    asked for.

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
import os
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer, Producer

from benchmarks.systems.base import PAYLOAD, Counter, Drained, System

CONTENT_TYPE = "application/octet-stream"  # bridge's: the body is opaque bytes
QUEUE_TYPE = os.environ.get("BRIDGE_BENCH_RABBITMQ_QUEUE_TYPE", "classic")
"""``quorum`` declares the loops' queues as quorum queues, as bridge's then are."""
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
        if QUEUE_TYPE == "classic":
            self.queue = Queue(self.queue_name, durable=True, auto_delete=False)
        else:
            self.queue = Queue(
                f"{self.queue_name}_{QUEUE_TYPE}",
                durable=True,
                auto_delete=False,
                queue_arguments={"x-queue-type": QUEUE_TYPE},
            )
        self.queue_name = str(self.queue.name)
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
        f"kombu 5.7/py-amqp, {QUEUE_TYPE} durable queue, persistent messages; drain = up to batch "
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
        f"0.2 s and passive declare says 0 ready; {QUEUE_TYPE} durable queue, persistent messages; "
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

"""The whole contract suite again on RabbitMQ's other layout: classic queues with priorities.

The contract suite reaches RabbitMQ with the defaults (quorum queues on
RabbitMQ 3.10 and later). ``max_priority`` makes classic queues, which
requeue, count and order differently; this module runs every contract test
on them, by importing the tests and giving them a ``backend_spec`` of its
own (which also takes the place of the parametrization over backends).
"""

from __future__ import annotations

from typing import Any

import pytest
from contract import test_claims
from contract.test_bulk import *  # noqa: F403
from contract.test_claims import *  # noqa: F403
from contract.test_holders import *  # noqa: F403
from contract.test_leases import *  # noqa: F403
from contract.test_payloads import *  # noqa: F403
from contract.test_queues import *  # noqa: F403

import bridge

from conftest import AMQP_URL

pytestmark = pytest.mark.service("rabbitmq")


@pytest.mark.xfail(  # type: ignore[no-redef]
    reason="the contract test creates an item of priority -3; RabbitMQ's priorities are 0 to "
    "max_priority (test_amqp.py checks their order)",
    raises=bridge.InvalidArgumentError,
    strict=False,
)
def test_higher_priority_first_then_fifo(queue: bridge.Queue) -> None:
    test_claims.test_higher_priority_first_then_fifo(queue)


@pytest.fixture
def backend_spec() -> dict[str, Any]:
    return {"url": AMQP_URL, "options": {"max_priority": 255}}

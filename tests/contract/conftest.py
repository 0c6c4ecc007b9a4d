"""The contract suite's backends: every backend, plus RabbitMQ's second layout.

RabbitMQ declares quorum queues by default; ``max_priority`` makes classic
queues, which requeue, count and order differently, so the contract runs on
both. Only the contract suite runs the second layout: the other tests
exercise the runner, the CLI and Celery, which do not depend on it.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import AMQP_URL, BACKENDS, spec_for

CONTRACT_BACKENDS = [
    *BACKENDS,
    pytest.param("rabbitmq-classic", id="rabbitmq-classic", marks=pytest.mark.service("rabbitmq")),
]


@pytest.fixture(params=CONTRACT_BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def backend_spec(backend_kind: str, tmp_path: Any) -> dict[str, Any]:
    if backend_kind == "rabbitmq-classic":
        return {"url": AMQP_URL, "options": {"max_priority": 255}}
    return spec_for(backend_kind, tmp_path)

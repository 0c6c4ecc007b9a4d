"""Topics (pub/sub, Marconi's second model) on every backend that keeps them.

The same cases run on memory (the specification), SQLite, PostgreSQL,
MariaDB, Redis and Redis Cluster; service-backed ones skip without their
server, and fail under ``BRIDGE_REQUIRE_SERVICES=1``. Backends that cannot
keep topics are refused by name, with no server needed.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import bridge
from bridge.backends import BACKENDS
from bridge.topics import DEFAULT_TTL, MAX_READ, MAX_TTL, TOPIC_STORES, supports_topics

from conftest import spec_for

TOPIC_BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.service("mariadb")),
    pytest.param("redis", id="redis", marks=pytest.mark.service("redis")),
    pytest.param("redis-cluster", id="redis-cluster", marks=pytest.mark.service("redis-cluster")),
]


@pytest.fixture(params=TOPIC_BACKENDS)
def topic_factory(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    yield made
    made.close()


@pytest.fixture
def new_topic(topic_factory: bridge.QueueFactory) -> Iterator[Any]:
    """Make topics with unique names on the test's backend; deleted afterwards."""
    made: list[bridge.Topic] = []

    def make() -> bridge.Topic:
        topic = topic_factory.get_topic(f"t_{uuid.uuid4().hex[:12]}")
        made.append(topic)
        return topic

    yield make
    for topic in made:
        topic.delete_topic()


@pytest.fixture
def topic(new_topic: Any) -> bridge.Topic:
    made: bridge.Topic = new_topic()
    return made


def datas(messages: list[bridge.TopicMessage]) -> list[Any]:
    return [message.data for message in messages]


# -- the model ----------------------------------------------------------------------


def test_two_subscribers_read_independently_and_ack_moves_only_one(topic: bridge.Topic) -> None:
    markers = topic.publish_many([{"n": 1}, {"n": 2}, {"n": 3}], ttl=60)
    first = topic.read("a")
    assert [m.marker for m in first] == markers
    assert datas(first) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert datas(topic.read("b", limit=2)) == [{"n": 1}, {"n": 2}]

    assert topic.ack("a", markers[1]) is True
    assert datas(topic.read("a")) == [{"n": 3}]
    assert datas(topic.read("b")) == [{"n": 1}, {"n": 2}, {"n": 3}], "b's marker did not move"


def test_reading_removes_nothing_and_moves_no_marker(topic: bridge.Topic) -> None:
    topic.publish("once")
    assert datas(topic.read("a")) == ["once"]
    assert datas(topic.read("a")) == ["once"]
    assert topic.stats().messages == 1


def test_ack_moves_forward_only(topic: bridge.Topic) -> None:
    one, two, three = topic.publish_many(["1", "2", "3"])
    assert topic.ack("a", two) is True
    assert topic.ack("a", one) is False, "never backward"
    assert topic.ack("a", two) is False, "already there"
    assert datas(topic.read("a")) == ["3"]
    assert topic.ack("a", three) is True
    assert topic.read("a") == []


def test_read_follows_new_messages_after_the_marker(topic: bridge.Topic) -> None:
    marker = topic.publish("first")
    topic.ack("a", marker)
    assert topic.read("a") == []
    topic.publish("second")
    assert datas(topic.read("a")) == ["second"]


def test_messages_carry_their_times(topic: bridge.Topic) -> None:
    before = time.time()
    topic.publish("x", ttl=30)
    (message,) = topic.read("a")
    # The store's clock (the database's or Redis's): the same host here.
    assert before - 1 < message.published < time.time() + 1
    assert message.expire == pytest.approx(message.published + 30, abs=0.01)


def test_new_subscriber_starts_at_the_oldest_live_message_or_at_the_latest(
    topic: bridge.Topic,
) -> None:
    topic.publish("gone", ttl=0.3)
    topic.publish_many(["old", "older still live"], ttl=60)
    time.sleep(0.5)
    assert datas(topic.read("fresh")) == ["old", "older still live"]

    assert topic.read("late", start="latest") == []
    topic.publish("news")
    assert datas(topic.read("late", start="latest")) == ["news"]
    assert datas(topic.read("late")) == ["news"], "start matters only the first time"


def test_latest_on_an_empty_topic_reads_what_follows(topic: bridge.Topic) -> None:
    assert topic.read("late", start="latest") == []
    topic.publish("first")
    assert datas(topic.read("late")) == ["first"]


def test_default_ttl(topic: bridge.Topic) -> None:
    topic.publish("x")
    (message,) = topic.read("a")
    assert message.expire - message.published == pytest.approx(DEFAULT_TTL, abs=0.01)


# -- expiry -------------------------------------------------------------------------


def test_expiry_removes_a_message_for_every_subscriber_read_or_not(topic: bridge.Topic) -> None:
    short = topic.publish("short", ttl=0.5)
    topic.publish("long", ttl=60)
    assert datas(topic.read("reader")) == ["short", "long"]
    assert topic.ack("reader", short) is True
    assert topic.stats().messages == 2

    time.sleep(0.8)
    assert datas(topic.read("reader")) == ["long"]
    assert datas(topic.read("idle")) == ["long"], "expired though idle never read it"
    stats = topic.stats()
    assert stats.messages == 1
    assert stats.oldest == stats.newest


def test_an_expired_message_between_live_ones_is_skipped(topic: bridge.Topic) -> None:
    topic.publish("a", ttl=60)
    middle = topic.publish("b", ttl=0.3)
    topic.publish("c", ttl=60)
    time.sleep(0.5)
    assert datas(topic.read("x")) == ["a", "c"]
    assert topic.ack("x", middle) is True, "an expired message's marker is still this topic's"
    assert datas(topic.read("x")) == ["c"]


def test_stats(topic: bridge.Topic) -> None:
    empty = topic.stats()
    assert (empty.messages, empty.oldest, empty.newest, empty.subscribers) == (0, None, None, 0)
    topic.publish("1")
    time.sleep(0.01)
    topic.publish("2")
    topic.ack("a", topic.read("a")[0].marker)
    topic.read("b", start="latest")
    stats = topic.stats()
    assert stats.messages == 2
    assert stats.oldest is not None
    assert stats.newest is not None
    assert stats.oldest < stats.newest
    assert stats.subscribers == 2


def test_delete_topic_forgets_messages_and_markers(new_topic: Any) -> None:
    topic, other = new_topic(), new_topic()
    topic.ack("a", topic.publish("x"))
    other.publish("kept")
    topic.delete_topic()
    assert topic.stats().messages == 0
    assert topic.stats().subscribers == 0
    assert datas(other.read("a")) == ["kept"]


# -- order under concurrent publishers ----------------------------------------------

PUBLISHERS = 4
EACH = 40


def test_concurrent_publishers_one_order_for_every_subscriber(topic: bridge.Topic) -> None:
    """Readers read and ack while publishers write: none may skip a late commit.

    On SQL a publish holds the topic's head row, so positions commit in
    their order; an autoincrement id alone would let a reader ack past a
    smaller id still uncommitted, and this test would miss messages.
    """
    total = PUBLISHERS * EACH
    seen: dict[str, list[tuple[int, int]]] = {"r1": [], "r2": []}
    errors: list[BaseException] = []
    deadline = time.monotonic() + 60

    def publish(who: int) -> None:
        try:
            for n in range(EACH):
                topic.publish([who, n], ttl=300)
        except BaseException as exc:
            errors.append(exc)

    def follow(reader: str) -> None:
        try:
            while len(seen[reader]) < total and time.monotonic() < deadline:
                messages = topic.read(reader, limit=7)
                if messages:
                    seen[reader].extend((m.data[0], m.data[1]) for m in messages)
                    topic.ack(reader, messages[-1].marker)
                else:
                    time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=follow, args=(r,)) for r in seen]
    threads += [threading.Thread(target=publish, args=(i,)) for i in range(PUBLISHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(seen["r1"]) == total, "a reader skipped or lost messages"
    assert set(seen["r1"]) == {(w, n) for w in range(PUBLISHERS) for n in range(EACH)}
    assert seen["r1"] == seen["r2"], "both subscribers see one order"
    for who in range(PUBLISHERS):
        own = [n for w, n in seen["r1"] if w == who]
        assert own == sorted(own), "each publisher's messages in its publish order"
    assert datas(topic.read("late-comer", limit=MAX_READ)) == [list(m) for m in seen["r1"]]


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.service("mariadb")),
    ],
)
def test_sql_a_later_publish_waits_for_an_earlier_slow_commit(
    kind: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case an autoincrement id gets wrong, made to happen on purpose.

    Publisher "slow" holds its transaction open after its insert; a second
    publisher starts meanwhile, and a subscriber reads and acks as fast as
    it can. The second publish must wait for the first commit, so the
    subscriber sees "early" before "late" and never acks past it.
    """
    from bridge.backends.topics_sql import SqlTopics

    original = SqlTopics._transaction
    inserted = threading.Event()
    releasing: list[float] = []

    def slow(self: SqlTopics, operation: str, work: Any) -> Any:
        if operation != "publish" or threading.current_thread().name != "slow":
            return original(self, operation, work)

        def held_open(conn: Any) -> Any:
            result = work(conn)
            if result is not None:
                inserted.set()
                time.sleep(0.6)
                releasing.append(time.monotonic())  # the commit comes after this
            return result

        return original(self, operation, held_open)

    monkeypatch.setattr(SqlTopics, "_transaction", slow)
    factory = bridge.QueueFactory(default=spec_for(kind, tmp_path))
    topic = factory.get_topic(f"t_{uuid.uuid4().hex[:12]}")
    try:
        topic.publish("warm-up")  # the head row exists: both publishes go the same way
        topic.ack("reader", topic.read("reader")[0].marker)
        seen: list[str] = []
        done = threading.Event()

        def follow() -> None:
            while not done.is_set() or len(seen) < 2:
                messages = topic.read("reader")
                seen.extend(m.data for m in messages)
                if messages:
                    topic.ack("reader", messages[-1].marker)
                if len(seen) >= 2 or time.monotonic() > give_up:
                    return
                time.sleep(0.005)

        give_up = time.monotonic() + 20
        slow_publisher = threading.Thread(target=topic.publish, args=("early",), name="slow")
        reader = threading.Thread(target=follow)
        slow_publisher.start()
        assert inserted.wait(10)
        reader.start()
        topic.publish("late")
        late_done = time.monotonic()
        done.set()
        slow_publisher.join()
        reader.join()
        assert seen == ["early", "late"]
        assert late_done > releasing[0], "the second publish waited for the first commit"
    finally:
        topic.delete_topic()
        factory.close()


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [-1, 0, -0.5, MAX_TTL + 1, float("nan"), float("inf"), True, "5"])
def test_bad_ttl_is_refused_and_nothing_written(topic: bridge.Topic, ttl: Any) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="ttl"):
        topic.publish("x", ttl=ttl)
    assert topic.stats().messages == 0


def test_the_longest_ttl_is_taken(topic: bridge.Topic) -> None:
    topic.publish("x", ttl=MAX_TTL)
    (message,) = topic.read("a")
    assert message.expire - message.published == pytest.approx(MAX_TTL, abs=0.01)


def test_unencodable_payload_is_refused_before_anything_is_written(topic: bridge.Topic) -> None:
    with pytest.raises(bridge.PayloadError, match="set"):
        topic.publish({"a": {1, 2}})
    with pytest.raises(bridge.PayloadError):
        topic.publish_many(["fine", ("a", "tuple")])
    assert topic.stats().messages == 0
    assert topic.read("a") == []


def test_markers_not_issued_by_this_topic_are_refused(new_topic: Any) -> None:
    topic, other = new_topic(), new_topic()
    mine = topic.publish("x")
    theirs = other.publish("y")
    position, tag = mine.split("@")
    unissued = [
        theirs,  # another topic's
        f"{position}9@{tag}",  # past the last position issued
        f"0@{tag}",
        f"0-0@{tag}",
        f"not-a-position@{tag}",
        "garbage",
        "",
    ]
    for marker in unissued:
        with pytest.raises(bridge.InvalidArgumentError, match="not a marker of topic"):
            topic.ack("a", marker)
    with pytest.raises(bridge.InvalidArgumentError):
        topic.ack("a", 1)
    assert datas(topic.read("a")) == ["x"], "nothing moved"
    assert topic.stats().subscribers == 0


def test_a_marker_from_before_delete_topic_never_names_a_later_message(
    topic: bridge.Topic,
) -> None:
    old = topic.publish_many(["1", "2", "3"])
    topic.delete_topic()
    new = topic.publish("after")
    assert new not in old
    (message,) = topic.read("a")
    assert (message.marker, message.data) == (new, "after")
    # The old marker is the topic's, and lies before every new message.
    assert topic.ack("a", old[-1]) is True
    assert datas(topic.read("a")) == ["after"]


@pytest.mark.parametrize("subscriber", ["", None, 3, "s" * 256, "\ud800"])
def test_bad_subscriber_names_are_refused(topic: bridge.Topic, subscriber: Any) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="subscriber"):
        topic.read(subscriber)
    with pytest.raises(bridge.InvalidArgumentError, match="subscriber"):
        topic.ack(subscriber, topic.publish("x"))


@pytest.mark.parametrize("limit", [0, -1, MAX_READ + 1, True, 1.5])
def test_bad_limit_is_refused(topic: bridge.Topic, limit: Any) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="limit"):
        topic.read("a", limit=limit)


def test_bad_start_is_refused(topic: bridge.Topic) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="start"):
        topic.read("a", start="newest")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "t" * 256])
def test_topic_names_are_checked_as_queue_names(name: str) -> None:
    with pytest.raises(bridge.InvalidArgumentError):
        bridge.QueueFactory(default="memory://").get_topic(name)


# -- where topics live ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("amqp://guest:secret@127.0.0.1:5672//", "AmqpBackend"),
        ("sqs://key:secret@127.0.0.1:9324", "SqsBackend"),
        ("beanstalk://127.0.0.1:11300", "BeanstalkBackend"),
        ("gearman://127.0.0.1:4730", "GearmanBackend"),
    ],
)
def test_backends_without_topics_refuse_by_name(url: str, backend: str) -> None:
    factory = bridge.QueueFactory(default=url)
    with pytest.raises(bridge.UnsupportedOperationError, match=backend) as refused:
        factory.get_topic("news")
    assert "secret" not in str(refused.value)


def test_capabilities_say_topics_exactly_where_a_topic_store_serves_them() -> None:
    """``capabilities.topics`` is what a user reads; ``TOPIC_STORES`` is what opens a
    store. Every registered backend class says yes exactly when the map has it."""
    for target in sorted(set(BACKENDS.values())):
        module_name, _, class_name = target.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        listed = any(key.endswith(f":{class_name}") for key in TOPIC_STORES)
        capabilities = getattr(cls, "capabilities", None)  # some are set per object
        assert (capabilities is not None and capabilities.topics) == listed, target
        assert supports_topics(cls) == listed, target


def test_get_topic_uses_the_configured_factory_and_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_CONFIG_MODULE", "bridge_tests_no_such_celeryconfig")
    factory = bridge.configure(default="memory://", queues={"beans": "beanstalk://127.0.0.1:1"})
    try:
        topic = bridge.get_topic("news")
        assert topic is factory.get_topic("news")
        topic.publish("hello")
        assert datas(bridge.get_topic("news").read("a")) == ["hello"]
        with pytest.raises(bridge.UnsupportedOperationError, match="BeanstalkBackend"):
            bridge.get_topic("beans")
    finally:
        factory.close()


def test_every_topic_store_is_a_final_topic_store() -> None:
    """mypy then holds each to the whole contract (a final class with abstract methods fails)."""
    import importlib

    from bridge.topics import TOPIC_STORES, TopicStore

    for backend_path, store_path in TOPIC_STORES.items():
        module, _, name = backend_path.partition(":")
        assert hasattr(importlib.import_module(module), name), backend_path
        module, _, name = store_path.partition(":")
        store = getattr(importlib.import_module(module), name)
        assert issubclass(store, TopicStore)
        assert getattr(store, "__final__", False), f"{store_path} is not @final"


def test_names_with_braces_and_unicode(topic_factory: bridge.QueueFactory) -> None:
    name = f"t{{%}}ü {uuid.uuid4().hex[:8]}"
    topic = topic_factory.get_topic(name)
    try:
        marker = topic.publish("x")
        assert datas(topic.read("sub {}%ü")) == ["x"]
        assert topic.ack("sub {}%ü", marker) is True
        assert topic.stats().subscribers == 1
        # A queue of the same name is another thing on the same store.
        assert topic_factory.get(name).number_of_items() == 0
    finally:
        topic.delete_topic()

"""Client side of scripts/kafka.sh, run with the confluent-kafka venv of scripts/kafka-client.sh.

    admin.py BOOTSTRAP probe TIMEOUT            create _streamsql_probe, produce one unique message
                                                and consume it back with a fresh consumer group
    admin.py BOOTSTRAP topic NAME PARTITIONS    create a topic if it does not exist, wait for leaders
    admin.py BOOTSTRAP delete-topic NAME        delete a topic if it exists, wait until it is gone

One line on stdout on success; a message ("kafka: ...") on stderr and exit 1 on failure. librdkafka's own log
lines (connection refused while the broker starts, ...) are silenced; the last error it reported
is part of the failure message instead.
"""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

PROBE_TOPIC = "_streamsql_probe"


class Failed(Exception):
    pass


class Client:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.last_error = None

    def _error_cb(self, err):
        self.last_error = err

    def config(self, **extra):
        conf = {
            "bootstrap.servers": self.bootstrap,
            "error_cb": self._error_cb,
            "log_level": 0,  # only the error callback above, nothing on stderr
            "socket.connection.setup.timeout.ms": 3000,
            "reconnect.backoff.max.ms": 500,
        }
        conf.update(extra)
        return conf

    def admin(self):
        return AdminClient(self.config())

    def fail(self, what):
        detail = f" (last client error: {self.last_error})" if self.last_error else ""
        raise Failed(f"{what}{detail}")


def remaining(deadline):
    return max(0.1, deadline - time.monotonic())


def topic_metadata(admin, name, timeout):
    """The TopicMetadata of `name`, or None if the broker does not know it."""
    # All topics: a metadata request for one named topic makes the broker auto-create it
    # (auto.create.topics.enable is on, as by default).
    md = admin.list_topics(timeout=timeout)
    t = md.topics.get(name)
    if t is None or (t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        return None
    return t


def ready(t):
    return t is not None and t.error is None and t.partitions and all(
        p.leader >= 0 and p.error is None for p in t.partitions.values()
    )


def create_topic(client, admin, name, partitions, deadline):
    """Create `name` unless it exists; wait until all its partitions have a leader.
    Returns (created, partition count)."""
    created = False
    try:
        existing = topic_metadata(admin, name, remaining(deadline))
    except KafkaException as e:
        client.fail(f"cannot reach Kafka at {client.bootstrap}: {e.args[0]}")
    if existing is None:
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            request_timeout=remaining(deadline),
            operation_timeout=remaining(deadline),
        )
        try:
            futures[name].result()
            created = True
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # created meanwhile: fine
                client.fail(f"could not create topic {name}: {e.args[0]}")
    while True:
        try:
            t = topic_metadata(admin, name, remaining(deadline))
        except KafkaException:
            t = None
        if ready(t):
            return created, len(t.partitions)
        if time.monotonic() >= deadline:
            client.fail(f"topic {name} has no leader for every partition yet")
        time.sleep(0.1)


def probe(client, timeout):
    deadline = time.monotonic() + timeout
    admin = client.admin()
    md = None
    try:
        md = admin.list_topics(timeout=remaining(deadline))
    except KafkaException as e:
        client.fail(f"no metadata from {client.bootstrap}: {e.args[0]}")
    create_topic(client, admin, PROBE_TOPIC, 1, deadline)

    value = f"probe-{uuid.uuid4()}".encode()
    delivered = []
    producer = Producer(client.config(**{"message.timeout.ms": int(remaining(deadline) * 1000), "acks": "all"}))
    producer.produce(PROBE_TOPIC, value=value, on_delivery=lambda err, msg: delivered.append((err, msg)))
    producer.flush(remaining(deadline))
    if not delivered:
        client.fail("the probe message was not acknowledged in time")
    err, msg = delivered[0]
    if err is not None:
        client.fail(f"producing the probe message failed: {err}")

    consumer = Consumer(client.config(**{
        "group.id": f"_streamsql_probe-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
    }))
    try:
        consumer.subscribe([PROBE_TOPIC])
        while time.monotonic() < deadline:
            m = consumer.poll(min(0.5, remaining(deadline)))
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                client.fail(f"consuming the probe message failed: {m.error()}")
            if m.value() == value:
                print(f"round trip via {PROBE_TOPIC} partition {msg.partition()} offset {msg.offset()}, "
                      f"{len(md.brokers)} broker(s), cluster {md.cluster_id}")
                return
        client.fail("the probe message did not come back to a consumer in time")
    finally:
        consumer.close()


def topic(client, name, partitions):
    admin = client.admin()
    created, count = create_topic(client, admin, name, partitions, time.monotonic() + 30)
    if created:
        print(f"created topic {name} with {count} partition(s)")
    elif count != partitions:
        print(f"topic {name} already exists with {count} partition(s), not {partitions}; left as is")
    else:
        print(f"topic {name} already exists with {count} partition(s)")


def delete_topic(client, name):
    admin = client.admin()
    deadline = time.monotonic() + 30
    try:
        if topic_metadata(admin, name, remaining(deadline)) is None:
            print(f"no topic {name}")
            return
    except KafkaException as e:
        client.fail(f"cannot reach Kafka at {client.bootstrap}: {e.args[0]}")
    futures = admin.delete_topics([name], request_timeout=remaining(deadline), operation_timeout=remaining(deadline))
    try:
        futures[name].result()
    except KafkaException as e:
        if e.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # deleted meanwhile: fine
            client.fail(f"could not delete topic {name}: {e.args[0]}")
    while True:
        try:
            if topic_metadata(admin, name, remaining(deadline)) is None:
                print(f"deleted topic {name}")
                return
        except KafkaException:
            pass
        if time.monotonic() >= deadline:
            client.fail(f"topic {name} still listed after deletion")
        time.sleep(0.1)


def main(argv):
    usage = "usage: admin.py BOOTSTRAP probe TIMEOUT | topic NAME PARTITIONS | delete-topic NAME"
    if len(argv) < 2:
        print(usage, file=sys.stderr)
        return 2
    client, action, args = Client(argv[0]), argv[1], argv[2:]
    try:
        if action == "probe" and len(args) == 1:
            probe(client, float(args[0]))
        elif action == "topic" and len(args) == 2:
            topic(client, args[0], int(args[1]))
        elif action == "delete-topic" and len(args) == 1:
            delete_topic(client, args[0])
        else:
            print(usage, file=sys.stderr)
            return 2
    except Failed as e:
        print(f"kafka: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

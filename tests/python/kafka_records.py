"""Writes and reads Kafka records for the integration tests, with confluent-kafka (an independent
client: the tests never check streamsql's Kafka output with streamsql's own client).

    kafka_records.py BOOTSTRAP produce TOPIC   < records   one JSON object per line:
        {"partition": 0, "key": "k" | null, "value": "text" | null, "timestamp": 1700000000000 | null}
    kafka_records.py BOOTSTRAP consume TOPIC   > records   every record up to each partition's end,
        as above plus "offset", ordered by partition and offset; read_committed (records of
        aborted transactions are left out), so a transaction left open makes it fail
    kafka_records.py BOOTSTRAP partitions TOPIC N            grow TOPIC to N partitions

Exit 1 with a message on stderr when a record cannot be written or the topic cannot be read.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition


def produce(bootstrap, topic):
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    count = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        kwargs = {"partition": record.get("partition", 0), "on_delivery": delivered}
        if record.get("key") is not None:
            kwargs["key"] = record["key"].encode()
        if record.get("value") is not None:
            kwargs["value"] = record["value"].encode()
        if record.get("timestamp") is not None:
            kwargs["timestamp"] = record["timestamp"]
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        producer.poll(0)
    left = producer.flush(60)
    if left or failures:
        sys.exit(f"kafka_records: {left} record(s) unsent, {len(failures)} failed: {failures[:3]}")
    print(f"produced {count} records to {topic}", file=sys.stderr)


def consume(bootstrap, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "streamsql-tests-reader",
            "enable.auto.commit": False,
            # The end of a partition is where a read_committed reader stops: before an open
            # transaction, or at the high watermark (past the last commit marker).
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    metadata = consumer.list_topics(timeout=10)
    if topic not in metadata.topics:
        sys.exit(f"kafka_records: no topic {topic}")
    partitions = sorted(metadata.topics[topic].partitions)
    ends = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = (low, high)
    records = []
    for p in partitions:
        low, high = ends[p]
        if high <= low:
            continue
        consumer.assign([TopicPartition(topic, p, low)])
        got = []
        deadline = time.monotonic() + 30
        while True:
            msg = consumer.poll(1)
            if msg is None:
                if time.monotonic() > deadline:
                    sys.exit(f"kafka_records: {topic}/{p} stopped before offset {high}")
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= high:
                        break
                    # A transaction still open holds read_committed readers back.
                    if time.monotonic() > deadline:
                        sys.exit(
                            f"kafka_records: {topic}/{p} ends at {msg.offset()} for read_committed readers, "
                            f"before offset {high}: a transaction was left open"
                        )
                    continue
                raise KafkaException(msg.error())
            ts_type, ts = msg.timestamp()
            got.append(
                {
                    "partition": p,
                    "offset": msg.offset(),
                    "key": None if msg.key() is None else msg.key().decode(),
                    "value": None if msg.value() is None else msg.value().decode(),
                    "timestamp": ts,
                }
            )
        records.extend(got)
    consumer.close()
    for record in records:
        print(json.dumps(record))


def add_partitions(bootstrap, topic, total):
    from confluent_kafka.admin import AdminClient, NewPartitions

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_partitions([NewPartitions(topic, int(total))]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while len(admin.list_topics(topic, timeout=10).topics[topic].partitions) < int(total):
        if time.monotonic() > deadline:
            sys.exit(f"kafka_records: {topic} has not {total} partitions after 30 s")
        time.sleep(0.2)
    print(f"{topic} has {total} partitions", file=sys.stderr)


def main():
    bootstrap, command, topic = sys.argv[1:4]
    if command == "produce":
        produce(bootstrap, topic)
    elif command == "consume":
        consume(bootstrap, topic)
    elif command == "partitions":
        add_partitions(bootstrap, topic, sys.argv[4])
    else:
        sys.exit(f"kafka_records: unknown command {command}")


if __name__ == "__main__":
    main()

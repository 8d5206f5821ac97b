"""Writes and reads Kafka records for the integration tests, with confluent-kafka (an independent
client: the tests never check streamsql's Kafka output with streamsql's own client).

    kafka_records.py BOOTSTRAP produce TOPIC   < records   one JSON object per line:
        {"partition": 0, "key": "k" | null, "value": "text" | null, "timestamp": 1700000000000 | null}
    kafka_records.py BOOTSTRAP consume TOPIC   > records   every record up to each partition's end,
        as above plus "offset", ordered by partition and offset

Exit 1 with a message on stderr when a record cannot be written or the topic cannot be read.
"""

import json
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


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
            "enable.partition.eof": False,
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
        while not got or got[-1]["offset"] + 1 < high:
            msg = consumer.poll(10)
            if msg is None:
                sys.exit(f"kafka_records: {topic}/{p} stopped before offset {high}")
            if msg.error():
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


def main():
    bootstrap, command, topic = sys.argv[1:4]
    if command == "produce":
        produce(bootstrap, topic)
    elif command == "consume":
        consume(bootstrap, topic)
    else:
        sys.exit(f"kafka_records: unknown command {command}")


if __name__ == "__main__":
    main()

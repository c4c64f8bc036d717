"""Publishes jobs to the jobs exchange with pika, poison properties included: pika sends a
short string given as bytes as it is, so it can send what AMQP forbids and RabbitMQ relays.

Usage: publish.py AMQP_URL JOBS_JSON_FILE. The file holds a list of
{"kind": "fetch-chatdata", "body": "<job JSON>", "poison": null | "message_id" |
"header_name" | "nesting"}; each is published with confirms, in order.
"""

import json
import sys

import pika

sys.setrecursionlimit(200_000)  # pika encodes nested tables recursively


def nested(levels):
    table = {}
    for _ in range(levels - 1):
        table = {"a": table}
    return table


def properties(poison):
    if poison == "message_id":
        return pika.BasicProperties(delivery_mode=2, message_id=b"\xff\xfe-a")
    if poison == "header_name":
        return pika.BasicProperties(delivery_mode=2, headers={b"\xc3\x28": 1})
    if poison == "nesting":
        return pika.BasicProperties(delivery_mode=2, headers={"n": nested(10_000)})
    return pika.BasicProperties(delivery_mode=2)


def main():
    url, jobs_file = sys.argv[1], sys.argv[2]
    with open(jobs_file) as f:
        jobs = json.load(f)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for job in jobs:
        channel.basic_publish(
            "wecom.jobs",
            job["kind"],
            job["body"].encode(),
            properties(job["poison"]),
            mandatory=True,
        )
    connection.close()
    print(f"published {len(jobs)}")


if __name__ == "__main__":
    main()

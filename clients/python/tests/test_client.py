"""The client against the local RabbitMQ and a running worker (see conftest.py)."""

import json

import pika
import pytest

from wecom_archive_client import ArchiveClient, GiveUp, MemorySeen, RetryLater, raise_for_failure

from conftest import private_keys

INLINE = {"corpid": "ww-emulator", "secret": "emulator-secret"}


def test_pages_come_back_once_each_even_when_delivered_twice(broker_url, worker):
    with ArchiveClient(broker_url) as client:
        job_id = client.publish_chatdata(
            dict(INLINE, private_keys=private_keys(), seq=0, limit=5, max_pages=2)
        )
        pages, seen = [], MemorySeen()
        handled = client.consume("fetch-chatdata", pages.append, seen, max_results=2, inactivity_timeout=30)
        assert handled == 2
        assert [p["result_id"] for p in pages] == [f"{job_id}:page-1", f"{job_id}:page-2"]
        assert all(p["status"] == "ok" and len(p["messages"]) == 5 for p in pages)
        assert pages[0]["correlation_id"] == job_id
        assert pages[1]["seq"] == pages[0]["next_seq"]

        # At-least-once: the same result delivered again is acked, not handled again.
        client._channel.basic_publish(
            "wecom.results", "chatdata-page", json.dumps(pages[0]).encode(),
            pika.BasicProperties(message_id=pages[0]["result_id"]),
        )
        again = []
        assert client.consume("fetch-chatdata", again.append, seen, inactivity_timeout=2) == 0
        assert again == []


def test_a_permanent_failure_is_give_up_and_a_transient_one_retry_later(broker_url, worker):
    with ArchiveClient(broker_url) as client:
        offlist = client.publish_chatdata({"corpid": "ww-offlist", "secret": "offlist-secret"})
        down = client.publish_chatdata({"corpid": "ww-down", "secret": "down-secret"})
        results = {}
        client.consume(
            "fetch-chatdata", lambda r: results.__setitem__(r["job_id"], r), MemorySeen(),
            max_results=2, inactivity_timeout=30,
        )
        with pytest.raises(GiveUp) as give_up:
            raise_for_failure(results[offlist])
        assert give_up.value.code == 301042 and not give_up.value.retryable
        with pytest.raises(RetryLater) as retry_later:
            raise_for_failure(results[down])
        assert retry_later.value.code == 10001 and retry_later.value.retryable
        assert results[down]["attempts"] == 2


def test_the_seed_services_body_with_unset_fields_as_null_is_a_job(broker_url, worker):
    with ArchiveClient(broker_url) as client:
        body = dict(INLINE, seq=0, private_keys=private_keys(), proxy=None, paswd=None)
        job_id = client.publish_chatdata(body)
        results = []
        client.consume("fetch-chatdata", results.append, MemorySeen(), max_results=1, inactivity_timeout=30)
        page = raise_for_failure(results[0])
        assert page["job_id"] == job_id and len(page["messages"]) == 1000


def test_a_handler_that_fails_leaves_its_result_for_the_next_consumer(broker_url, worker):
    with ArchiveClient(broker_url) as client:
        client.publish_chatdata(dict(INLINE, private_keys=private_keys(), limit=3))

        def crash(_result):
            raise RuntimeError("the database is down")

        with pytest.raises(RuntimeError):
            client.consume("fetch-chatdata", crash, MemorySeen(), inactivity_timeout=30)
        results = []
        client.consume("fetch-chatdata", results.append, MemorySeen(), max_results=1, inactivity_timeout=10)
        assert len(results) == 1 and results[0]["status"] == "ok"

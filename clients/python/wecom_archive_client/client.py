"""Publishing jobs and consuming results; see the package's docstring."""

import json
import uuid

import pika

JOBS_EXCHANGE = "wecom.jobs"
RESULT_QUEUES = {"fetch-chatdata": "chatdata-results", "fetch-media": "media-results"}


class JobFailed(Exception):
    """A failure result: the job ended without its result (its dead letter holds the job)."""

    def __init__(self, result):
        error = result["error"]
        super().__init__(f"{error['code']} {error['name']}: {error['message']}")
        self.result = result
        self.job_id = result.get("job_id")
        self.code = error["code"]
        self.name = error["name"]
        self.retryable = error["retryable"]


class RetryLater(JobFailed):
    """The failure was transient (network, a full disk, an SDK crash): the same job may succeed
    later. In Odoo, raise it as ``RetryableJobError``; or replay the dead letter
    (``wecom-archive dlq replay``)."""


class GiveUp(JobFailed):
    """The failure is permanent or needs an operator (a wrong key, the IP off the whitelist):
    retrying the same job fails the same way."""


def raise_for_failure(result):
    """Returns ``result`` when it is ``ok``; raises ``RetryLater`` or ``GiveUp`` otherwise."""
    if result.get("status") == "ok":
        return result
    if result["error"]["retryable"]:
        raise RetryLater(result)
    raise GiveUp(result)


class MemorySeen:
    """The result ids already handled, in memory. In Odoo, use a table with a unique index on
    ``result_id``, written in the same transaction as what the handler stores."""

    def __init__(self):
        self._ids = set()

    def __contains__(self, result_id):
        return result_id in self._ids

    def add(self, result_id):
        self._ids.add(result_id)


class ArchiveClient:
    """One connection to the broker, for publishing jobs and consuming results."""

    def __init__(self, url):
        self._connection = pika.BlockingConnection(pika.URLParameters(url))
        self._channel = self._connection.channel()
        # Every publish waits for the broker's confirm; an unroutable job raises.
        self._channel.confirm_delivery()

    def close(self):
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def publish_chatdata(self, job, **kwargs):
        """Publishes a ``fetch-chatdata`` job (a dict); returns its ``job_id``."""
        return self._publish("fetch-chatdata", job, **kwargs)

    def publish_media(self, job, **kwargs):
        """Publishes a ``fetch-media`` job (a dict); returns its ``job_id``."""
        return self._publish("fetch-media", job, **kwargs)

    def _publish(self, kind, job, correlation_id=None, reply_to=None):
        job = dict(job)
        job_id = job.get("job_id") or str(uuid.uuid4())
        job["job_id"] = job_id
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=job_id,
            correlation_id=correlation_id or job_id,
            reply_to=reply_to,
        )
        # Raises pika.exceptions.UnroutableError / NackError when the broker does not take it.
        self._channel.basic_publish(
            JOBS_EXCHANGE, kind, json.dumps(job).encode(), properties, mandatory=True
        )
        return job_id

    def consume(self, kind, handler, seen, max_results=None, inactivity_timeout=5, prefetch=10):
        """Hands each new result of ``kind`` to ``handler(result)`` and acks it once the handler
        returns; a result whose ``result_id`` is in ``seen`` is acked unhandled. A handler that
        raises leaves its result unacked (the broker delivers it again). Returns the number of
        results handled, after ``max_results`` of them or ``inactivity_timeout`` seconds of
        silence. At most ``prefetch`` results (pages of up to 1,000 messages) are held at once."""
        handled = 0
        queue = RESULT_QUEUES[kind]
        self._channel.basic_qos(prefetch_count=prefetch)
        try:
            for method, _properties, body in self._channel.consume(
                queue, inactivity_timeout=inactivity_timeout
            ):
                if method is None:
                    break
                try:
                    result = json.loads(body)
                    result_id = result.get("result_id")
                    fresh = result_id is None or result_id not in seen
                    if fresh:
                        handler(result)
                        if result_id is not None:
                            seen.add(result_id)
                except Exception:
                    # Left for the next consumer, at once rather than when the channel closes.
                    self._channel.basic_nack(method.delivery_tag, requeue=True)
                    raise
                handled += fresh
                self._channel.basic_ack(method.delivery_tag)
                if max_results is not None and handled >= max_results:
                    break
        finally:
            # Hands back what the broker pushed beyond the last result taken; on a channel the
            # broker already closed (a missing queue, say) there is nothing to hand back, and
            # the error that closed it is the one to see.
            if self._channel.is_open:
                self._channel.cancel()
        return handled

"""A small client for wecom-archive's RabbitMQ contract, the way an Odoo module uses it.

- ``ArchiveClient.publish_chatdata`` / ``publish_media``: a job to ``wecom.jobs``, with
  publisher confirms, ``mandatory`` routing, ``message_id`` and ``correlation_id``.
- ``ArchiveClient.consume``: results from ``chatdata-results`` / ``media-results``, handed to
  your handler once each (by ``result_id``: delivery is at-least-once), acked after it returns.
- ``raise_for_failure``: a failure result as ``RetryLater`` (transient: enqueue the work again
  later, as OCA queue_job's ``RetryableJobError``) or ``GiveUp`` (an operator must act).

The contract itself is in the repository's ``schemas/README.md``.
"""

from .client import ArchiveClient, GiveUp, JobFailed, MemorySeen, RetryLater, raise_for_failure

__all__ = ["ArchiveClient", "GiveUp", "JobFailed", "MemorySeen", "RetryLater", "raise_for_failure"]

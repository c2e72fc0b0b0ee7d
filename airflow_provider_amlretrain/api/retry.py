"""Retry policy as data: what is retryable, and how long to wait before the next try.

The retry loop itself is azure-core's (see :mod:`airflow_provider_amlretrain.hooks.retry`), which
reads these numbers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUS_CODES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """
    When and how long to retry a failed call.

    Connection errors, timeouts and answers 408/429/5xx are retried with exponential backoff
    and jitter; a ``Retry-After`` header is honoured (capped by ``max_retry_after``).

    :param max_attempts: Total tries, the first included.
    :param backoff_base: Seconds before the first retry; doubled for each further retry.
    :param backoff_max: Upper bound of one backoff.
    :param max_retry_after: Upper bound for a service's ``Retry-After``.
    :param jitter: Whether to add up to 25% random jitter to backoffs.
    """

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    jitter: bool = True

    @staticmethod
    def is_retryable_status(status_code: int) -> bool:
        """
        Whether an answer with this status may succeed when tried again.

        :param status_code: HTTP status of the answer.
        """
        return status_code in RETRYABLE_STATUS_CODES

    def can_retry(self, attempt: int) -> bool:
        """
        Whether another try is allowed after ``attempt`` tries.

        :param attempt: Tries made so far (1 after the first).
        """
        return attempt < self.max_attempts

    def delay(self, attempt: int, retry_after: str | float | None = None) -> float:
        """
        Seconds to wait before try ``attempt + 1``.

        :param attempt: Tries made so far (1 after the first).
        :param retry_after: The answer's ``Retry-After``, if any: the header (seconds or HTTP date) or seconds.
        """
        hinted = (
            float(retry_after) if isinstance(retry_after, int | float) else parse_retry_after(retry_after)
        )
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        backoff = min(self.backoff_base * (2 ** max(attempt - 1, 0)), self.backoff_max)
        if self.jitter and backoff > 0:
            backoff += random.uniform(0, backoff * 0.25)
        return backoff


def parse_retry_after(value: str | None) -> float | None:
    """
    Parse a ``Retry-After`` header: delay seconds or an HTTP date.

    :param value: The header value.
    :return: Seconds to wait, or ``None`` if absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)

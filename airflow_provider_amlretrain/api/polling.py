"""Polling rules declared once, run by the sync wait loop and the async trigger alike."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import Enum

from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.exceptions import AzureMLConfigError


class PollDecision(str, Enum):
    """What a waiter does after reading a job's status."""

    DONE = "done"
    TIMED_OUT = "timed_out"
    WAIT = "wait"


POLL_GROWTH = 0.5
"""Each wait lasts at most this fraction of the time the job has run so far (before the ceiling)."""

DEFAULT_MAX_POLL_INTERVAL = 120.0
"""The longest wait between two status reads unless ``max_poll_interval`` says otherwise."""


@dataclass(frozen=True)
class JobPollingRules:
    """
    How to wait for a BES job: the one polling policy of the operator, the sensor and the trigger.

    The interval grows with the time the job has been running: ``poll_interval`` at first, then half
    the elapsed time (``POLL_GROWTH``), never more than ``max_poll_interval``. A short job is seen soon
    after it ends, a long one is not asked about every few seconds for an hour. A ``Retry-After`` on a
    status answer is honoured (up to the ceiling), and the last wait is cut to meet the deadline. Time in the
    service's queue does not count (:meth:`observed`).

    :param poll_interval: The first and shortest wait between two status reads, in seconds.
    :param deadline: Absolute ``time.time()`` after which the wait ends as timed out, or ``None``.
    :param max_poll_interval: The longest wait (default ``DEFAULT_MAX_POLL_INTERVAL``, and never below
        ``poll_interval``).
    :param started_at: ``time.time()`` when the job started; ``None`` keeps every wait at ``poll_interval``.
    :param seen_queued: Whether a read found the job ``NotStarted`` (waiting in the service's queue) and no read
        has found it running since; set by :meth:`observed`.
    """

    poll_interval: float = 15.0
    deadline: float | None = None
    max_poll_interval: float | None = None
    started_at: float | None = None
    seen_queued: bool = False

    def __post_init__(self) -> None:
        if not self.poll_interval > 0:
            raise AzureMLConfigError(
                f"poll_interval must be a positive number of seconds, not {self.poll_interval!r}."
            )
        if self.max_poll_interval is not None and not self.max_poll_interval > 0:
            raise AzureMLConfigError(
                f"max_poll_interval must be a positive number of seconds (or None), not {self.max_poll_interval!r}."
            )

    @property
    def ceiling(self) -> float:
        """The longest wait between two reads."""
        ceiling = DEFAULT_MAX_POLL_INTERVAL if self.max_poll_interval is None else self.max_poll_interval
        return max(self.poll_interval, ceiling)

    def started(self, now: float | None = None) -> JobPollingRules:
        """
        These rules with ``started_at`` set to ``now`` when unknown (the wait's own start then counts).

        :param now: Current ``time.time()``, for tests.
        """
        if self.started_at is not None:
            return self
        return replace(self, started_at=time.time() if now is None else now)

    def observed(self, status: BatchJobStatus, now: float | None = None) -> JobPollingRules:
        """
        These rules after a status read: time spent in the service's queue does not grow the waits.

        A job first seen ``NotStarted`` and then ``Running`` has just begun its work: the waits start again
        from ``poll_interval`` at that read, as they did at the start call, instead of having grown with the
        queue time (a job that queued a minute would otherwise be read every 30 s from its first second of
        work). A job already running at the first read keeps its start.

        :param status: The status just read.
        :param now: Current ``time.time()``, for tests.
        """
        if status is BatchJobStatus.NOT_STARTED:
            return self if self.seen_queued else replace(self, seen_queued=True)
        if self.seen_queued and status is BatchJobStatus.RUNNING:
            return replace(self, started_at=time.time() if now is None else now, seen_queued=False)
        return self

    def decide(self, status: BatchJobStatus, now: float | None = None) -> PollDecision:
        """
        Decide after one status read.

        :param status: The status just read.
        :param now: Current ``time.time()``, for tests.
        """
        if status.is_terminal:
            return PollDecision.DONE
        now = time.time() if now is None else now
        if self.deadline is not None and now >= self.deadline:
            return PollDecision.TIMED_OUT
        return PollDecision.WAIT

    def interval(self, now: float | None = None) -> float:
        """
        The wait before the next read, from the job's elapsed time alone (no deadline, no ``Retry-After``).

        :param now: Current ``time.time()``, for tests.
        """
        if self.started_at is None:
            return self.poll_interval
        now = time.time() if now is None else now
        grown = POLL_GROWTH * max(0.0, now - self.started_at)
        return min(self.ceiling, max(self.poll_interval, grown))

    def sleep_seconds(self, now: float | None = None, retry_after: float | None = None) -> float:
        """
        Seconds to sleep before the next read: the interval, at least ``retry_after``, cut to the deadline.

        :param now: Current ``time.time()``, for tests.
        :param retry_after: The status answer's ``Retry-After`` in seconds, if it had one (honoured up to
            :attr:`ceiling`).
        """
        now = time.time() if now is None else now
        wait = self.interval(now)
        if retry_after is not None and retry_after > wait:
            wait = min(retry_after, self.ceiling)
        if self.deadline is None:
            return wait
        return max(0.0, min(wait, self.deadline - now))


STATUS_LOG_EVERY = 300.0
"""Seconds between two "still <status>" lines of a wait whose status has not changed."""


@dataclass
class StatusLogThrottle:
    """
    When a waiter writes a status line: on every change of status, else once per ``every`` seconds.

    A triggerer runs a thousand waits in one process; a line per poll of each would cost more CPU than
    the polls themselves and bury the lines that say something in the task logs.

    :param every: Seconds between two lines that repeat the same status.
    """

    every: float = STATUS_LOG_EVERY
    _last_status: BatchJobStatus | None = None
    _last_line_at: float = 0.0

    def should_log(self, status: BatchJobStatus, now: float | None = None) -> bool:
        """
        Whether to write a line for this status read (and, if so, note it as written).

        :param status: The status just read.
        :param now: Current ``time.time()``, for tests.
        """
        now = time.time() if now is None else now
        if status == self._last_status and now - self._last_line_at < self.every:
            return False
        self._last_status, self._last_line_at = status, now
        return True

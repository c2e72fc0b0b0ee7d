"""Polling rules declared once, run by the sync wait loop and the async trigger alike."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_amlretrain.api.states import BatchJobStatus


class PollDecision(str, Enum):
    """What a waiter does after reading a job's status."""

    DONE = "done"
    TIMED_OUT = "timed_out"
    WAIT = "wait"


@dataclass(frozen=True)
class JobPollingRules:
    """
    How to wait for a BES job.

    :param poll_interval: Seconds between two status reads.
    :param deadline: Absolute ``time.time()`` after which the wait ends as timed out, or ``None``.
    """

    poll_interval: float = 30.0
    deadline: float | None = None

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

    def sleep_seconds(self, now: float | None = None) -> float:
        """
        Seconds to sleep before the next read: the interval, shortened to meet the deadline.

        :param now: Current ``time.time()``, for tests.
        """
        if self.deadline is None:
            return self.poll_interval
        now = time.time() if now is None else now
        return max(0.0, min(self.poll_interval, self.deadline - now))

"""Trigger event payloads, job states, polling rules and the retry policy: the shared, transport-free rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from airflow_provider_amlretrain.api.events import BatchJobEvent, BatchJobOutcome
from airflow_provider_amlretrain.api.polling import JobPollingRules, PollDecision
from airflow_provider_amlretrain.api.retry import RetryPolicy, parse_retry_after
from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLError
from tests.unit.support import JOB_ID

# -- events ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        BatchJobEvent(JOB_ID, BatchJobOutcome.ENDED, BatchJobStatus.FINISHED),
        BatchJobEvent(JOB_ID, BatchJobOutcome.ENDED, BatchJobStatus.FAILED, "Module failed"),
        BatchJobEvent(JOB_ID, BatchJobOutcome.ENDED, BatchJobStatus.CANCELLED),
        BatchJobEvent(JOB_ID, BatchJobOutcome.TIMED_OUT, BatchJobStatus.RUNNING, "too slow"),
        BatchJobEvent(JOB_ID, BatchJobOutcome.TIMED_OUT, BatchJobStatus.NOT_STARTED, "queued"),
        BatchJobEvent(JOB_ID, BatchJobOutcome.ERROR, None, "401"),
    ],
)
def test_event_payload_round_trip(event):
    payload = event.to_payload()

    assert json.loads(json.dumps(payload)) == payload  # plain data only
    assert BatchJobEvent.from_payload(payload) == event


def test_payload_shape():
    assert BatchJobEvent(JOB_ID, BatchJobOutcome.ENDED, BatchJobStatus.FAILED, "why").to_payload() == {
        "job_id": JOB_ID,
        "outcome": "ended",
        "status": "Failed",
        "message": "why",
    }


def test_payload_accepts_integer_status():
    event = BatchJobEvent.from_payload({"job_id": JOB_ID, "outcome": "ended", "status": 4})
    assert event.status is BatchJobStatus.FINISHED


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "ended",
        ["job", "ended"],
        {},
        {"outcome": "ended", "status": "Finished"},
        {"job_id": 42, "outcome": "ended", "status": "Finished"},
        {"job_id": JOB_ID, "outcome": "succeeded", "status": "Finished"},
        {"job_id": JOB_ID, "outcome": None, "status": "Finished"},
        {"job_id": JOB_ID, "outcome": "ended", "status": "Running"},
        {"job_id": JOB_ID, "outcome": "ended", "status": "NotStarted"},
        {"job_id": JOB_ID, "outcome": "ended", "status": None},
        {"job_id": JOB_ID, "outcome": "ended"},
        {"job_id": JOB_ID, "outcome": "ended", "status": "Done"},
        {"job_id": JOB_ID, "outcome": "timed_out", "status": 9},
    ],
)
def test_invalid_payloads_are_errors(payload):
    with pytest.raises(AzureMLError):
        BatchJobEvent.from_payload(payload)


# -- states ------------------------------------------------------------------------------------------


def test_state_predicates():
    assert {s for s in BatchJobStatus if s.is_terminal} == {
        BatchJobStatus.FAILED,
        BatchJobStatus.CANCELLED,
        BatchJobStatus.FINISHED,
    }
    assert [s for s in BatchJobStatus if s.is_success] == [BatchJobStatus.FINISHED]
    assert {s for s in BatchJobStatus if s.is_active} == {BatchJobStatus.NOT_STARTED, BatchJobStatus.RUNNING}


def test_integer_order_matches_the_service():
    assert [BatchJobStatus.parse(i).value for i in range(5)] == [
        "NotStarted",
        "Running",
        "Failed",
        "Cancelled",
        "Finished",
    ]


# -- polling rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(BatchJobStatus))
def test_terminal_states_are_done_even_past_the_deadline(status):
    rules = JobPollingRules(poll_interval=10, deadline=100.0)
    expected = PollDecision.DONE if status.is_terminal else PollDecision.TIMED_OUT
    assert rules.decide(status, now=200.0) is expected
    if not status.is_terminal:
        assert rules.decide(status, now=50.0) is PollDecision.WAIT


def test_sleep_is_shortened_to_meet_the_deadline():
    rules = JobPollingRules(poll_interval=30, deadline=100.0)
    assert rules.sleep_seconds(now=0.0) == 30
    assert rules.sleep_seconds(now=90.0) == 10
    assert rules.sleep_seconds(now=150.0) == 0
    assert JobPollingRules(poll_interval=30).sleep_seconds(now=1e12) == 30


def test_waits_grow_with_the_jobs_elapsed_time_up_to_the_ceiling():
    rules = JobPollingRules(poll_interval=5, max_poll_interval=60, started_at=1000.0)
    # The first interval until half the elapsed time exceeds it, then half the elapsed time, then the ceiling.
    assert [rules.sleep_seconds(now=1000.0 + elapsed) for elapsed in (0, 8, 10, 40, 100, 119, 121, 5000)] == [
        5,
        5,
        5,
        20,
        50,
        59.5,
        60,
        60,
    ]


def test_the_default_ceiling_is_two_minutes_and_never_below_the_first_interval():
    assert JobPollingRules(started_at=0.0).sleep_seconds(now=1e6) == 120
    assert JobPollingRules(poll_interval=300, started_at=0.0).sleep_seconds(now=1e6) == 300


def test_without_a_start_time_every_wait_is_the_first_interval():
    rules = JobPollingRules(poll_interval=7)
    assert rules.sleep_seconds(now=1e6) == 7
    assert rules.started(now=1e6).sleep_seconds(now=1e6 + 100) == 50
    assert rules.started(now=1e6).started(now=0.0).started_at == 1e6  # a known start is kept


def test_retry_after_is_honoured_up_to_the_ceiling_and_cut_to_the_deadline():
    rules = JobPollingRules(poll_interval=5, max_poll_interval=60, started_at=0.0)
    assert rules.sleep_seconds(now=0.0, retry_after=25) == 25
    assert rules.sleep_seconds(now=0.0, retry_after=2) == 5  # never sooner than the policy
    assert rules.sleep_seconds(now=0.0, retry_after=3600) == 60
    assert JobPollingRules(poll_interval=5, deadline=10.0).sleep_seconds(now=0.0, retry_after=25) == 10


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"poll_interval": 0}, "poll_interval must be a positive number of seconds, not 0"),
        ({"poll_interval": -1.5}, "poll_interval must be a positive number of seconds, not -1.5"),
        ({"max_poll_interval": 0}, "max_poll_interval must be a positive number of seconds (or None), not 0"),
    ],
)
def test_intervals_that_would_spin_are_refused(arguments, words):
    with pytest.raises(AzureMLConfigError) as caught:
        JobPollingRules(**arguments)
    assert str(caught.value) == f"{words}."


# -- retry policy ------------------------------------------------------------------------------------


def test_retry_policy_backoff_without_jitter():
    policy = RetryPolicy(max_attempts=6, backoff_base=1.5, backoff_max=5, jitter=False)
    assert [policy.delay(n) for n in range(1, 5)] == [1.5, 3.0, 5, 5]
    assert policy.can_retry(5) and not policy.can_retry(6)


def test_retry_policy_jitter_stays_within_a_quarter():
    policy = RetryPolicy(backoff_base=4, jitter=True)
    delays = [policy.delay(1) for _ in range(50)]
    assert all(4 <= d <= 5 for d in delays)
    assert len(set(delays)) > 1, "callers retrying together must spread out"


def test_retry_policy_zero_backoff_is_zero():
    assert RetryPolicy(backoff_base=0).delay(3) == 0


def test_retry_after_wins_over_backoff_and_is_capped():
    policy = RetryPolicy(backoff_base=10, max_retry_after=60, jitter=False)
    assert policy.delay(1, "3") == 3
    assert policy.delay(1, "600") == 60
    assert policy.delay(2, "garbage") == 20


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_retryable_codes(code):
    assert RetryPolicy.is_retryable_status(code)


@pytest.mark.parametrize("code", [200, 204, 400, 401, 403, 404, 409, 501])
def test_not_retryable_codes(code):
    assert not RetryPolicy.is_retryable_status(code)


def test_parse_retry_after():
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= parse_retry_after(format_datetime(later, usegmt=True)) <= 31
    earlier = datetime.now(UTC) - timedelta(hours=1)
    assert parse_retry_after(format_datetime(earlier, usegmt=True)) == 0.0


def test_status_lines_on_a_change_of_status_and_once_per_period_otherwise():
    from airflow_provider_amlretrain.api.polling import StatusLogThrottle

    lines = StatusLogThrottle(every=300)
    running, finished = BatchJobStatus.RUNNING, BatchJobStatus.FINISHED

    said = [
        lines.should_log(running, now=1000),  # the first read
        lines.should_log(running, now=1010),  # the same status, soon after
        lines.should_log(running, now=1299),
        lines.should_log(running, now=1300),  # the same status, a period later: "still running"
        lines.should_log(finished, now=1301),  # a change
    ]

    assert said == [True, False, False, True, True]


def test_time_in_the_services_queue_does_not_grow_the_waits():
    rules = JobPollingRules(poll_interval=5, max_poll_interval=60, started_at=1000)

    queued = rules.observed(BatchJobStatus.NOT_STARTED, now=1080)
    assert queued.interval(now=1080) == 40  # while queued, the waits grow from the start call
    running = queued.observed(BatchJobStatus.NOT_STARTED, now=1085).observed(BatchJobStatus.RUNNING, now=1090)
    assert running.interval(now=1090) == 5  # its work began at this read: from poll_interval again
    assert running.interval(now=1110) == 10
    assert (
        running.observed(BatchJobStatus.RUNNING, now=1200).started_at == 1090
    )  # only the first Running moves it

    assert (
        rules.observed(BatchJobStatus.RUNNING, now=1080).interval(now=1080) == 40
    )  # running at the first read

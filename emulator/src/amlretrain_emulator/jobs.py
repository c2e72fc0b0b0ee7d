"""BES jobs: states, the FIFO worker pool that runs them, cancellation and restart recovery.

Lifecycle: submit creates a ``NotStarted`` job; start puts it in the FIFO queue (it stays
``NotStarted`` until a worker takes it, as a real shared pool would); a worker marks it
``Running``, runs the experiment, waits out the minimum job duration, then writes the outputs and
marks it ``Finished`` (or ``Failed`` with ``Details``). A DELETE marks a not-yet-ended job
``Cancelled`` at once; a worker never writes the outputs of a cancelled job (writing and
cancelling are serialised per job). On start-up, jobs that were queued or ``Running`` when the
emulator stopped are queued again (in their start order) and run from the beginning.
"""

from __future__ import annotations

import collections
import enum
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from amlretrain_emulator.context import utc_now
from amlretrain_emulator.errors import redact
from amlretrain_emulator.experiments import JobFailure, run_experiment
from amlretrain_emulator.storage import BlobReference, StorageError, write_blob

if TYPE_CHECKING:
    from amlretrain_emulator.config import EmulatorConfig
    from amlretrain_emulator.faults import FaultStore
    from amlretrain_emulator.state import StateStore

log = logging.getLogger(__name__)


class JobStatus(enum.StrEnum):
    """BES job status codes (the integer form is the enum's position, 0..4)."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    FINISHED = "Finished"

    @property
    def code(self) -> int:
        """The integer ``StatusCode`` some real answers carry."""
        return list(JobStatus).index(self)

    @property
    def is_terminal(self) -> bool:
        """Whether the job has ended."""
        return self in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.FINISHED)


class JobRunner:
    """A pool of worker threads running started jobs in FIFO order.

    :param store: persisted state.
    :param config: the configuration (concurrency, minimum duration, storage).
    :param faults: fault rules (``fail_jobs``, ``job_seconds``).
    """

    def __init__(self, store: StateStore, config: EmulatorConfig, faults: FaultStore) -> None:
        self.store = store
        self.config = config
        self.faults = faults
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cancelled: set[str] = set()
        self._commit_locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers and re-queue jobs interrupted by a previous stop."""
        self._stop.clear()
        pending = [
            job
            for job in self.store.list("jobs")
            if job["status"] == JobStatus.RUNNING.value
            or (job["status"] == JobStatus.NOT_STARTED.value and job.get("start_requested_at"))
        ]
        for job in sorted(pending, key=lambda j: (j.get("start_requested_at") or "", j["id"])):
            log.info("Re-queuing job %s (was %s when the emulator stopped)", job["id"], job["status"])
            self._queue.put(job["id"])
        for number in range(self.config.job_concurrency):
            thread = threading.Thread(target=self._work, name=f"bes-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers; jobs in flight stay ``Running`` on disk and resume on the next start.

        :param timeout: how long to wait for each worker.
        """
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def commit_lock(self, job_id: str) -> threading.Lock:
        """The lock serialising output writing and cancellation of one job.

        :param job_id: the job id.
        """
        with self._locks_guard:
            return self._commit_locks[job_id]

    def enqueue(self, job_id: str) -> None:
        """Queue a started job.

        :param job_id: the job id.
        """
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> None:
        """Mark a job cancelled in memory so a worker running it stops early.

        :param job_id: the job id.
        """
        self._cancelled.add(job_id)

    # -- workers ---------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._run(job_id)
            except Exception:  # never let a worker die
                log.exception("Job %s crashed in the emulator", job_id)
                self._end(job_id, JobStatus.FAILED, "The emulator hit an internal error running this job.")

    def _duration(self) -> float:
        override = self.faults.job_seconds()
        return self.config.min_job_seconds if override is None else override

    def _interrupted(self, job_id: str) -> bool:
        return self._stop.is_set() or job_id in self._cancelled

    def _run(self, job_id: str) -> None:
        job = self.store.get("jobs", job_id)
        if job is None or JobStatus(job["status"]).is_terminal or self._interrupted(job_id):
            return
        found = self.store.find_endpoint(job["workspace_id"], job["service_id"])
        if found is None:
            self._end(job_id, JobStatus.FAILED, "The web service of this job no longer exists.")
            return
        webservice, endpoint_name = found
        began = time.monotonic()

        def _mark_running(record: dict[str, Any]) -> None:
            if record["status"] in (JobStatus.NOT_STARTED.value, JobStatus.RUNNING.value):
                record["status"] = JobStatus.RUNNING.value
                record["started_at"] = utc_now()

        with self.commit_lock(job_id):
            job = self.store.update("jobs", job_id, _mark_running)
        if job is None or job["status"] != JobStatus.RUNNING.value:
            return
        log.info("Job %s running on web service %s", job_id, webservice["name"])
        outputs = None
        details = self.faults.take_job_failure(job["service_id"], webservice["name"])
        if details is None:
            try:
                outputs = run_experiment(
                    webservice,
                    webservice["endpoints"][endpoint_name],
                    job["request"],
                    job_id,
                    self.config.storage_connection_string,
                )
            except JobFailure as exc:
                details = redact(str(exc))
        deadline = began + self._duration()
        while time.monotonic() < deadline:
            if self._interrupted(job_id):
                return
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if self._interrupted(job_id):
            return
        with self.commit_lock(job_id):
            current = self.store.get("jobs", job_id)
            if current is None or current["status"] != JobStatus.RUNNING.value:
                return  # cancelled meanwhile: outputs are not written
            if details is None:
                assert outputs is not None
                details = self._write_outputs(job, outputs)
            if details is not None:
                self._end(job_id, JobStatus.FAILED, details)
                log.info("Job %s failed", job_id)
                return
            assert outputs is not None
            results = {
                output.port: {"RelativeLocation": job["request"]["Outputs"][output.port]["RelativeLocation"]}
                for output in outputs
            }
            self._end(job_id, JobStatus.FINISHED, None, results)
            log.info("Job %s finished", job_id)

    def _write_outputs(self, job: dict[str, Any], outputs: list[Any]) -> str | None:
        for output in outputs:
            reference = BlobReference.parse(job["request"]["Outputs"][output.port], f"output '{output.port}'")
            try:
                write_blob(
                    reference.client(),
                    output.content,
                    reference.describe(),
                    output.content_type,
                    container=reference.container_client(),
                )
            except StorageError as exc:
                return redact(f"Error writing output '{output.port}': {exc}.")
        return None

    def _end(
        self, job_id: str, status: JobStatus, details: str | None, results: dict[str, Any] | None = None
    ) -> None:
        def _change(record: dict[str, Any]) -> None:
            if JobStatus(record["status"]).is_terminal:
                return
            record["status"] = status.value
            record["details"] = details
            record["results"] = results
            record["ended_at"] = utc_now()

        self.store.update("jobs", job_id, _change)

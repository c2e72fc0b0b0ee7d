"""Fault injection: rules as data, applied by a raw ASGI middleware to the Azure API paths only.

The fault document (config file key ``faults``; ``GET``/``PUT /_emulator/faults`` at run time)::

    {"rules": [
        {"method": "POST", "path": "/jobs$", "status": 429, "retry_after": 1, "times": 2},
        {"path": "/jobs/[0-9a-f]+$", "status": 503, "times": 1},
        {"status": 500, "times": 1, "code": "InternalError", "message": "boom"},
        {"path": "/jobs/[0-9a-f]+/start$", "status": 503, "code": "RequestThrottled", "times": 1},
        {"delay_seconds": 2, "times": 1},
        {"method": "PATCH", "delay_seconds": 5, "when": "after", "times": 1},
        {"drop_connection": true, "times": 1, "when": "before"},
        {"status": 503, "code": "RequestThrottled", "probability": 0.05}],
     "fail_jobs": [{"service": "<serviceId or name>", "details": "Module execution ...", "times": 1}],
     "job_seconds": 3.0,
     "integer_status_codes": false,
     "random_seed": 12}

Rules are tried in order; the first whose ``method`` (any if absent) and ``path`` (a regular
expression searched in the URL path, any if absent) match is applied and its ``times`` counts down
(the rule disappears at zero; no ``times`` means permanent). A rule with ``probability`` (0 < p <= 1)
applies to each matching request with that chance, drawn from a generator seeded with
``random_seed`` (any seed if absent), so a run of many requests fails a given share of them; a
request the draw spares goes on to the next rule (so rules with probabilities p1, p2, ... fail
p1 + (1 - p1) p2 + ... of the requests), and ``times`` counts only applied faults. A rule may combine
``delay_seconds`` (sleep first) with ``status`` (answer with the Azure error shape; 429 and 503
carry ``Retry-After``: ``retry_after`` seconds, default 1) or ``drop_connection`` (announce a
body, send part of it and abort: the client sees an incomplete response). ``when`` applies to
``drop_connection``: ``"before"`` (default: the request never reaches the service) or
``"after"`` (the request is processed, e.g. a job is created, and the answer is lost); and to a
``delay_seconds`` alone: ``"after"`` processes the request at once and sends the answer late (a
client that gives up meanwhile does not know its request took effect).
``fail_jobs`` makes the next matching BES jobs end ``Failed`` with ``details``; ``job_seconds``
overrides the minimum job duration; ``integer_status_codes`` makes job status answers carry
``StatusCode`` as an integer (0..4) like some real answers.

``GET /_emulator/fault-stats`` counts the Azure API requests seen and the faults applied, by kind
(``status-429``, ``drop-before``, ``drop-after``, ``delay``, ``delay-after``...), since the last
``PUT /_emulator/faults``.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import random
import re
import threading
from typing import TYPE_CHECKING, Any

from amlretrain_emulator.errors import code_for_status, error_bytes

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_emulator"
DOCUMENT_KEYS = ("rules", "fail_jobs", "job_seconds", "integer_status_codes", "random_seed")
RULE_KEYS = (
    "method",
    "path",
    "status",
    "retry_after",
    "times",
    "delay_seconds",
    "drop_connection",
    "when",
    "code",
    "message",
    "probability",
)
FAIL_JOB_KEYS = ("service", "details", "times")
DEFAULT_FAIL_DETAILS = "Module execution encountered an internal library error."


def _check_times(entry: dict[str, Any], where: str) -> None:
    times = entry.get("times")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError(f"{where}: times must be an integer >= 1 (omit it for a permanent rule)")


def validate_document(document: Any) -> dict[str, Any]:
    """Validate a fault document and return a normalised deep copy.

    :param document: the JSON document.
    :raises ValueError: naming the problem.
    """
    if not isinstance(document, dict):
        raise ValueError("the fault document must be a JSON object")
    unknown = sorted(set(document) - set(DOCUMENT_KEYS))
    if unknown:
        raise ValueError(f"unknown fault document keys {unknown}; known: {list(DOCUMENT_KEYS)}")
    result = copy.deepcopy(document)
    rules = result.setdefault("rules", [])
    if not isinstance(rules, list):
        raise ValueError("rules must be a list")
    for index, rule in enumerate(rules):
        where = f"rules[{index}]"
        if not isinstance(rule, dict):
            raise ValueError(f"{where} must be an object")
        unknown = sorted(set(rule) - set(RULE_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; known: {list(RULE_KEYS)}")
        if not any(k in rule for k in ("status", "delay_seconds", "drop_connection")):
            raise ValueError(f"{where} needs status, delay_seconds or drop_connection")
        if "status" in rule and rule.get("drop_connection"):
            raise ValueError(f"{where}: status and drop_connection exclude each other")
        status = rule.get("status")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError(f"{where}: status must be an integer 400..599")
        for key in ("retry_after", "delay_seconds"):
            value = rule.get(key)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"{where}: {key} must be a number >= 0")
        probability = rule.get("probability")
        if probability is not None and (
            not isinstance(probability, int | float)
            or isinstance(probability, bool)
            or not 0 < probability <= 1
        ):
            raise ValueError(f"{where}: probability must be a number in (0, 1]")
        if rule.get("when", "before") not in ("before", "after"):
            raise ValueError(f"{where}: when must be 'before' or 'after'")
        if "path" in rule:
            try:
                re.compile(rule["path"])
            except (re.error, TypeError) as exc:
                raise ValueError(f"{where}: path is not a valid regular expression: {exc}") from None
        _check_times(rule, where)
    fail_jobs = result.setdefault("fail_jobs", [])
    if not isinstance(fail_jobs, list):
        raise ValueError("fail_jobs must be a list")
    for index, entry in enumerate(fail_jobs):
        where = f"fail_jobs[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("service"), str):
            raise ValueError(f"{where} must be an object with a 'service' (service id or name)")
        unknown = sorted(set(entry) - set(FAIL_JOB_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; known: {list(FAIL_JOB_KEYS)}")
        _check_times(entry, where)
    job_seconds = result.get("job_seconds")
    if job_seconds is not None and (not isinstance(job_seconds, int | float) or job_seconds < 0):
        raise ValueError("job_seconds must be a number >= 0 or null")
    if not isinstance(result.get("integer_status_codes", False), bool):
        raise ValueError("integer_status_codes must be true or false")
    seed = result.get("random_seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError("random_seed must be an integer or null")
    return result


def fault_kind(rule: dict[str, Any]) -> str:
    """A short name for what a rule does to a request (for the fault statistics).

    :param rule: a validated rule.
    """
    when = rule.get("when", "before")
    if rule.get("drop_connection"):
        return f"drop-{when}"
    if rule.get("status") is not None:
        return f"status-{rule['status']}"
    return "delay-after" if when == "after" else "delay"


class FaultStore:
    """The current fault document, thread-safe, with counting-down rules.

    :param document: initial document (validated).
    """

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._document = validate_document(document or {})
        self._random = random.Random(self._document.get("random_seed"))
        self._requests = 0
        self._injected: collections.Counter[str] = collections.Counter()

    def get(self) -> dict[str, Any]:
        """A copy of the current document."""
        with self._lock:
            return copy.deepcopy(self._document)

    def set(self, document: Any) -> dict[str, Any]:
        """Replace the document.

        :param document: the new document.
        :raises ValueError: if it is invalid (the old document stays).
        """
        validated = validate_document(document)
        with self._lock:
            self._document = validated
            self._random = random.Random(validated.get("random_seed"))
            self._requests = 0
            self._injected.clear()
            return copy.deepcopy(validated)

    def stats(self) -> dict[str, Any]:
        """Azure API requests seen and faults applied (by :func:`fault_kind`) since the last :meth:`set`."""
        with self._lock:
            return {"requests": self._requests, "injected": dict(sorted(self._injected.items()))}

    @staticmethod
    def _consume(entries: list[dict[str, Any]], index: int) -> dict[str, Any]:
        entry = entries[index]
        if entry.get("times") is not None:
            entry["times"] -= 1
            if entry["times"] <= 0:
                del entries[index]
        return copy.deepcopy(entry)

    def take_rule(self, method: str, path: str) -> dict[str, Any] | None:
        """The first rule matching a request (its ``times`` is consumed), or ``None``.

        :param method: HTTP method.
        :param path: URL path.
        """
        with self._lock:
            self._requests += 1
            rules = self._document["rules"]
            for index, rule in enumerate(rules):
                if "method" in rule and str(rule["method"]).upper() != method.upper():
                    continue
                if "path" in rule and not re.search(rule["path"], path):
                    continue
                if "probability" in rule and self._random.random() >= float(rule["probability"]):
                    continue
                self._injected[fault_kind(rule)] += 1
                return self._consume(rules, index)
        return None

    def take_job_failure(self, service_id: str, service_name: str) -> str | None:
        """The ``details`` of a ``fail_jobs`` entry for this service (consumed), or ``None``.

        :param service_id: the service id.
        :param service_name: the service name.
        """
        with self._lock:
            entries = self._document["fail_jobs"]
            for index, entry in enumerate(entries):
                if entry["service"] in (service_id, service_name):
                    return str(self._consume(entries, index).get("details") or DEFAULT_FAIL_DETAILS)
        return None

    def job_seconds(self) -> float | None:
        """The job duration override, if any."""
        with self._lock:
            value = self._document.get("job_seconds")
            return None if value is None else float(value)

    def integer_status_codes(self) -> bool:
        """Whether job status answers carry integer ``StatusCode`` values."""
        with self._lock:
            return bool(self._document.get("integer_status_codes", False))


class FaultMiddleware:
    """Raw ASGI middleware applying :class:`FaultStore` rules outside ``/_emulator``.

    :param app: the wrapped ASGI app.
    :param store: the fault store.
    """

    def __init__(self, app: ASGIApp, store: FaultStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        rule = self.store.take_rule(scope["method"], path)
        if rule is None:
            await self.app(scope, receive, send)
            return
        late = rule.get("when") == "after" and not rule.get("drop_connection") and rule.get("status") is None
        if rule.get("delay_seconds") and late:
            await _answer_late(self.app, scope, receive, send, float(rule["delay_seconds"]))
            return
        if rule.get("delay_seconds"):
            await asyncio.sleep(float(rule["delay_seconds"]))
        if rule.get("drop_connection"):
            if rule.get("when") == "after":
                await self.app(scope, receive, _swallow)
            await _drop(send)
            return
        status = rule.get("status")
        if status is None:
            await self.app(scope, receive, send)
            return
        await _send_error(send, rule)


async def _answer_late(app: ASGIApp, scope: Scope, receive: Receive, send: Send, seconds: float) -> None:
    """Process the request at once, and send its answer ``seconds`` later (the work is done meanwhile)."""
    answer: list[Message] = []

    async def _keep(message: Message) -> None:
        answer.append(message)

    await app(scope, receive, _keep)
    await asyncio.sleep(seconds)
    for message in answer:
        await send(message)


async def _swallow(message: Message) -> None:
    """Discard the app's answer (its work is done; the client will not see it)."""


async def _drop(send: Send) -> None:
    """Announce a 200 with a body, send only part of it, then stop: the server closes the socket."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"Status', "more_body": True})
    # Returning without completing the body makes the server abort the connection.


async def _send_error(send: Send, rule: dict[str, Any]) -> None:
    status = int(rule["status"])
    code = str(rule.get("code") or code_for_status(status))
    message = str(rule.get("message") or f"Injected fault: the service answered {status}.")
    body = error_bytes(code, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (429, 503) or rule.get("retry_after") is not None:
        retry_after = rule.get("retry_after")
        seconds = 1 if retry_after is None else max(0, round(float(retry_after)))
        headers.append((b"retry-after", str(seconds).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

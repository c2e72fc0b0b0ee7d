"""
Mutation check of the guarantees: break each guard on purpose, in a scratch copy, and run the tests that must notice.

Each mutant replaces one exact piece of code (which must occur exactly once) in a copy of the repository
(its tracked and new files, with ``node_modules`` linked), then runs the tests named for it there. A mutant
is *caught* when those tests fail (pytest exit code 1). The script prints a table and exits non-zero if
any mutant survived or could not be applied.

Usage: ``python scripts/mutants.py [--only NAME ...] [--keep]`` (``make mutants``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROVIDER = "airflow_provider_amlretrain"


@dataclass(frozen=True)
class Mutant:
    """
    One deliberate break of a guard.

    :param name: Short name for the table.
    :param path: The file to change, relative to the repository.
    :param old: The exact code to replace (must occur once).
    :param new: What to put instead.
    :param tests: The pytest node ids or paths that must fail.
    """

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = (
    Mutant(
        "record: If-Match dropped",
        f"{PROVIDER}/promotion/record.py",
        "data, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified",
        "data, overwrite=True",
        ("tests/integration/test_record_store.py",),
    ),
    Mutant(
        "record: create-only overwrites",
        f"{PROVIDER}/promotion/record.py",
        "result = blob.upload_blob(data, overwrite=False)",
        "result = blob.upload_blob(data, overwrite=True)",
        ("tests/integration/test_record_store.py",),
    ),
    Mutant(
        "guard: staleness check off",
        f"{PROVIDER}/promotion/guard.py",
        "if deployed_end and candidate_end and candidate_end < deployed_end and not self.force:",
        "if False:",
        ("tests/unit/test_promotion_guard.py",),
    ),
    Mutant(
        "guard: live claim ignored",
        f"{PROVIDER}/promotion/guard.py",
        "            and record.pending_is_live()\n",
        "            and False\n",
        ("tests/unit/test_promotion_guard.py",),
    ),
    Mutant(
        "endpoint: served model not checked",
        f"{PROVIDER}/operators/update_endpoint_model.py",
        "if now is None or now.relative_location != location.relative_location:",
        "if False:",
        ("tests/unit/test_promotion_operators.py",),
    ),
    Mutant(
        "ARM: served model not checked",
        f"{PROVIDER}/operators/update_web_service_model.py",
        "        if serving != model.uri:\n",
        "        if False:\n",
        ("tests/unit/test_promotion_operators.py",),
    ),
    Mutant(
        "ARM: rollback not checked",
        f"{PROVIDER}/operators/update_web_service_model.py",
        'if serving != inverse[-1]["value"]:',
        "if False:",
        ("tests/unit/test_promotion_operators.py",),
    ),
    Mutant(
        "promotion: rollback skipped",
        f"{PROVIDER}/operators/promotion_base.py",
        "restored = self.rollback(deployment, model)",
        "restored = False",
        ("tests/unit/test_promotion_operators.py",),
    ),
    Mutant(
        "promotion: kill/timeout not cleaned up",
        f"{PROVIDER}/operators/promotion_base.py",
        "        in_flight.cleaning_up = True\n",
        "        return\n",
        (
            "tests/integration/test_promotion_flow.py::test_a_promotion_timed_out_mid_patch_rolls_back_and_says_so",
        ),
    ),
    Mutant(
        "promotion: on_kill does not stop execute",
        f"{PROVIDER}/operators/promotion_base.py",
        '        raise AirflowTaskTerminated(f"Killed while promoting to {self.deployment_target}.")',
        "        return",
        (
            "tests/integration/test_promotion_flow.py::test_a_promotion_killed_mid_smoke_test_rolls_back_and_says_so",
        ),
    ),
    Mutant(
        "redaction: sig= kept",
        f"{PROVIDER}/redaction.py",
        '(re.compile(r"(?i)([?&]sig=)[^&\\"\'\\s]*"), r"\\1***"),',
        '(re.compile(r"(?i)([?&]sig=)(?!)"), r"\\1***"),',
        ("tests/unit/test_secrets.py",),
    ),
    Mutant(
        "SAS: not masked",
        f"{PROVIDER}/blob_sas.py",
        "    mask_secret(sas)\n",
        "",
        ("tests/unit/test_batch_request.py",),
    ),
    Mutant(
        "SAS: input SAS can write",
        f"{PROVIDER}/blob_sas.py",
        "        return BlobSasPermissions(read=True)\n",
        "        return BlobSasPermissions(read=True, write=True)\n",
        ("tests/unit/test_batch_request.py",),
    ),
    Mutant(
        "SAS: output SAS can read",
        f"{PROVIDER}/blob_sas.py",
        "    return BlobSasPermissions(create=True, write=True)\n",
        "    return BlobSasPermissions(read=True, create=True, write=True)\n",
        ("tests/unit/test_batch_request.py",),
    ),
    Mutant(
        "SAS: whole container instead of one blob",
        f"{PROVIDER}/blob_sas.py",
        "        blob_name=blob,\n        permission=_permission(access),",
        "        blob_name='',\n        permission=_permission(access),",
        ("tests/unit/test_batch_request.py",),
    ),
    Mutant(
        "BES: account key sent to the service",
        f"{PROVIDER}/blob_references.py",
        "    return scoped_blob_reference(conn_id, port, relative, access, ttl_seconds)",
        "    return BlobReference(relative_location=relative, connection_string=extras.get('connection_string'))",
        ("tests/unit/test_batch_request.py",),
    ),
    Mutant(
        "start: CannotStartJob fails the try",
        f"{PROVIDER}/hooks/studio.py",
        "if not own_job or err.status_code != 400 or err.error_code != CANNOT_START_JOB:",
        "if True:",
        ("tests/unit/test_operator.py", "tests/unit/test_hook.py"),
    ),
    Mutant(
        "start: any CannotStartJob status accepted",
        f"{PROVIDER}/hooks/studio.py",
        "if not own_job or err.status_code != 400 or err.error_code != CANNOT_START_JOB:",
        "if not own_job or err.error_code != CANNOT_START_JOB:",
        ("tests/unit/test_hook.py",),
    ),
    Mutant(
        "start: CannotStartJob accepted for a job not the caller's",
        f"{PROVIDER}/hooks/studio.py",
        "if not own_job or err.status_code != 400 or err.error_code != CANNOT_START_JOB:",
        "if err.status_code != 400 or err.error_code != CANNOT_START_JOB:",
        ("tests/unit/test_hook.py",),
    ),
    Mutant(
        "start: the operator does not say the job is its own",
        f"{PROVIDER}/operators/batch_execution.py",
        "self.hook.start_job(job_id, own_job=True)",
        "self.hook.start_job(job_id)",
        ("tests/unit/test_operator.py",),
    ),
    Mutant(
        "outputs: SAS minted before the attempt folder",
        f"{PROVIDER}/operators/batch_execution.py",
        "                placed[name] = resolve_blob_spec(\n"
        "                    name, spec_in_folder(name, spec, folder), BlobAccess.WRITE, ttl_seconds\n"
        "                )\n",
        "                placed[name] = in_folder(resolve_blob_spec(name, spec, BlobAccess.WRITE, ttl_seconds), folder)\n",
        ("tests/unit/test_operator.py",),
    ),
    Mutant(
        "sensor: deferred timeout retryable",
        f"{PROVIDER}/sensors/batch_job.py",
        "            raise AirflowSensorTimeout(\n",
        "            raise AzureMLError(\n",
        ("tests/unit/test_sensor.py",),
    ),
    Mutant(
        "retry: no jitter",
        f"{PROVIDER}/api/retry.py",
        "backoff += random.uniform(0, backoff * 0.25)",
        "backoff += 0",
        ("tests/unit/test_events_states.py",),
    ),
    Mutant(
        "blob arrival: state stored before the events are handed over",
        f"{PROVIDER}/triggers/blob_arrival.py",
        "                for payload in found:\n",
        "                saved = await self._save(store, state)\n                for payload in found:\n",
        ("tests/unit/test_blob_arrival_trigger.py",),
    ),
    Mutant(
        "blob arrival: a poll lists the whole history",
        f"{PROVIDER}/triggers/blob_arrival.py",
        "start_from = None if full or not state.cursor else state.cursor",
        "start_from = None",
        ("tests/unit/test_blob_arrival_trigger.py",),
    ),
    Mutant(
        "blob arrival: cursor moved by blobs it does not watch",
        f"{PROVIDER}/triggers/blob_arrival.py",
        "            if not self._watched(blob.name):\n                continue\n",
        "            state.cursor = max(state.cursor, blob.name)\n"
        "            if not self._watched(blob.name):\n                continue\n",
        ("tests/unit/test_blob_arrival_trigger.py",),
    ),
    Mutant(
        "blob arrival: an overwritten blob (new ETag) ignored",
        f"{PROVIDER}/triggers/blob_arrival_state.py",
        "if self.seen.get(name) == etag:",
        "if name in self.seen:",
        ("tests/unit/test_blob_arrival_trigger.py",),
    ),
    Mutant(
        "blob arrival: no full scan for blobs below the cursor",
        f"{PROVIDER}/triggers/blob_arrival_state.py",
        "return self.full_scan_at is None or datetime.now(UTC)",
        "return self.full_scan_at is None or False and datetime.now(UTC)",
        ("tests/unit/test_blob_arrival_trigger.py",),
    ),
    Mutant(
        "blob arrival: writes to the data container",
        f"{PROVIDER}/triggers/blob_arrival.py",
        "            state.seen[blob.name] = str(blob.etag)\n",
        "            state.seen[blob.name] = str(blob.etag)\n"
        '            await container.upload_blob(f"_seen/{blob.name}", b"", overwrite=True)\n',
        ("tests/integration/test_blob_arrival_trigger.py::test_the_trigger_only_lists_the_container",),
    ),
    Mutant(
        "blob arrival: SDK HTTP logging left at INFO",
        f"{PROVIDER}/triggers/blob_arrival.py",
        "            logger.setLevel(logging.WARNING)\n",
        "            pass\n",
        ("tests/unit/test_blob_arrival_trigger.py",),
    ),
    Mutant(
        "on_new_data: a repeated arrival trains again",
        "dags/amlretrain_on_new_data.py",
        "                    raise AirflowSkipException(",
        "                    print(",
        ("tests/unit/test_example_dags.py",),
    ),
)


def scratch_copy(target: Path) -> None:
    """Copy the repository's tracked and untracked (not ignored) files to ``target``; link node_modules."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        relative = raw.decode()
        source = REPO_ROOT / relative
        if not source.is_file():
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    modules = REPO_ROOT / "node_modules"
    if modules.exists():
        (target / "node_modules").symlink_to(modules.resolve())


def apply(mutant: Mutant, root: Path) -> str | None:
    """Apply a mutant in ``root``; the reason when it cannot be applied."""
    path = root / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        return f"the code to replace occurs {count} times in {mutant.path}"
    path.write_text(text.replace(mutant.old, mutant.new))
    return None


def run_mutant(mutant: Mutant, keep: bool) -> tuple[str, float]:
    """Apply one mutant to a fresh scratch copy and run its tests; ``caught``, ``SURVIVED`` or an error."""
    root = Path(tempfile.mkdtemp(prefix="amlretrain-mutant-"))
    started = time.monotonic()
    try:
        scratch_copy(root)
        problem = apply(mutant, root)
        if problem:
            return f"not applied: {problem}", 0.0
        env = {**os.environ, "PYTHONPATH": str(root)}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutant.tests],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.monotonic() - started
        if result.returncode == 1:
            return "caught", elapsed
        if result.returncode == 0:
            return "SURVIVED", elapsed
        return f"error (pytest exit {result.returncode}): {result.stdout[-300:]}", elapsed
    finally:
        if keep:
            print(f"  scratch copy kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the mutants and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="run only mutants whose name contains one of these"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(word in m.name for word in args.only)]
    rows = []
    for mutant in chosen:
        verdict, seconds = run_mutant(mutant, args.keep)
        rows.append((mutant.name, ", ".join(mutant.tests), verdict, seconds))
        print(f"{verdict:>8}  {mutant.name} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    width = max(len(name) for name, *_ in rows)
    tests_width = max(len(tests) for _, tests, *_ in rows)
    print(f"| {'mutant':<{width}} | {'tests run':<{tests_width}} | caught |")
    print(f"|{'-' * (width + 2)}|{'-' * (tests_width + 2)}|--------|")
    for name, tests, verdict, _ in rows:
        caught = "yes" if verdict == "caught" else f"NO ({verdict})"
        print(f"| {name:<{width}} | {tests:<{tests_width}} | {caught} |")
    return 0 if all(verdict == "caught" for *_, verdict, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""
Benchmark: status polls over TLS, azure-core's pipeline (this provider) against plain aiohttp sessions.

``python benchmarks/tls_polls.py`` starts the local stack, finishes one BES job, then serves a copy of the
emulator's state over HTTPS (a self-signed certificate made here, trusted through ``SSL_CERT_FILE``) and polls
the job's status from ``--callers`` concurrent callers, ``--rounds`` polls each, over both HTTP and HTTPS:

- ``provider``: this provider's async hook (azure-core pipeline, one shared client per connection and loop),
  the client of ``status_polls.py``;
- ``aiohttp_shared``: one plain ``aiohttp.ClientSession`` for every caller;
- ``aiohttp_new_session``: a new ``aiohttp.ClientSession`` per poll (what the Http provider's triggers do).

Each reports its own CPU per poll and the TCP connections it opened. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/, beside this script
from bench_stack import benchmark_stack
from parse_cost import bytecode_env
from results_file import ResultsFile, benchmark_parser, load_average
from status_polls import STUDIO_CONN, client_result, finished_job, run_client

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

PLAIN_CLIENT = r"""
import asyncio, json, sys, time
import aiohttp

callers, rounds, url, key, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
opened = {"n": 0}

async def _on_connection(session, context, params):
    opened["n"] += 1

def session():
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_on_connection)
    return aiohttp.ClientSession(trace_configs=[trace], headers={"Authorization": f"Bearer {key}"})

errors = []

async def poll(shared):
    try:
        if shared is None:
            async with session() as own, own.get(url) as answer:
                await answer.read()
        else:
            async with shared.get(url) as answer:
                await answer.read()
        if answer.status != 200:
            errors.append(answer.status)
    except Exception as err:
        errors.append(type(err).__name__)

async def caller(shared):
    for index in range(rounds):
        await poll(shared)
        if index < rounds - 1:
            await asyncio.sleep(0.5)

async def main():
    shared = session() if mode == "shared" else None
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(shared) for _ in range(callers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if shared is not None:
        await shared.close()
    return cpu, wall

cpu, wall = asyncio.run(main())
polls = callers * rounds
print(json.dumps({
    "polls": polls,
    "errors": len(errors),
    "client_cpu_seconds": round(cpu, 3),
    "client_cpu_ms_per_poll": round(1000 * cpu / polls, 3),
    "wall_seconds": round(wall, 3),
    "tcp_connections_opened": opened["n"],
}))
"""


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """
    A certificate for ``127.0.0.1`` and its key, as PEM files in ``directory``.

    :param directory: Where to write ``cert.pem`` and ``key.pem``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def _plain_client(
    env: dict[str, str], args: argparse.Namespace, url: str, key: str, mode: str
) -> dict[str, Any]:
    return client_result(
        [sys.executable, "-c", PLAIN_CLIENT, str(args.callers), str(args.rounds), url, key, mode],
        cwd=REPO_ROOT,
        env=env,
        what="the aiohttp client",
    )


def bench_tls_polls(args: argparse.Namespace) -> dict[str, Any]:
    """
    The three clients over HTTP and over HTTPS, against the same job.

    :param args: The command line (``callers``, ``rounds``).
    """
    import requests

    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook
    from amlretrain_devstack.procs import free_port

    with benchmark_stack({"min_job_seconds": 0.0}, bytecode_env()) as (stack, env, tmp):
        job_id = finished_job(stack)
        hook = AzureMLStudioHook(STUDIO_CONN)
        plain_url, key = hook.job_url(job_id), hook.settings.api_key
        cert, cert_key = self_signed_certificate(tmp)
        state = tmp / "tls-state"
        shutil.copytree(stack.info["emulator"]["state_dir"], state)
        port = free_port()
        command = [sys.executable, "-m", "amlretrain_emulator", "serve", "--port", str(port)]
        command += ["--state-dir", str(state), "--config", stack.info["emulator"]["config_file"]]
        command += ["--log-level", "warning", "--ssl-certfile", str(cert), "--ssl-keyfile", str(cert_key)]
        server = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert stack.emulator_url, "the stack has no emulator"
            origin = stack.emulator_url.rstrip("/")
            tls_origin = f"https://127.0.0.1:{port}"
            for _ in range(150):
                try:
                    requests.get(
                        f"{tls_origin}/_emulator/health", verify=str(cert), timeout=2
                    ).raise_for_status()
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            tls_env = dict(env, SSL_CERT_FILE=str(cert))
            name = f"AIRFLOW_CONN_{STUDIO_CONN.upper()}"
            tls_env[name] = env[name].replace(origin, tls_origin)
            results: dict[str, Any] = {"callers": args.callers, "rounds": args.rounds}
            for scheme, client_env, url in (
                ("http", env, plain_url),
                ("https", tls_env, plain_url.replace(origin, tls_origin)),
            ):
                results[scheme] = {
                    "provider": run_client(REPO_ROOT, client_env, args, job_id),
                    "aiohttp_shared": _plain_client(client_env, args, url, key, "shared"),
                    "aiohttp_new_session": _plain_client(client_env, args, url, key, "new"),
                }
            results["load_average"] = load_average()
            return results
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    """Run the benchmark and write its results file."""
    parser = benchmark_parser(__doc__, "tls_polls")
    parser.add_argument("--callers", type=int, default=300, help="concurrent callers")
    parser.add_argument("--rounds", type=int, default=3, help="polls per caller")
    parser.add_argument("--compare-with", type=Path, action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    results_file.write(bench_tls_polls(args))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()

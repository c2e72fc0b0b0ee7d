"""Ports of a dev deployment: chosen free, and never the same twice before anything binds them."""

from __future__ import annotations

import socket

from amlretrain_devstack import procs
from amlretrain_devstack.airflow_settings import airflow_env


class _RepeatingSocket:
    """A socket whose OS hands out ``ports`` in turn (as a real one may hand a just-closed port out again)."""

    ports: list[int] = []

    def __init__(self, *args: object) -> None:
        self.port = 0

    def __enter__(self) -> _RepeatingSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        self.port = address[1] or self.ports.pop(0)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_a_port_to_avoid_is_not_handed_out(monkeypatch):
    _RepeatingSocket.ports = [40001, 40001, 40002]
    monkeypatch.setattr(procs.socket, "socket", _RepeatingSocket)

    assert procs.free_port(avoid={40001}) == 40002


def test_the_log_servers_never_get_the_api_servers_port_or_each_others(monkeypatch, tmp_path):
    # The OS hands out the API server's port first, then the worker log server's again.
    _RepeatingSocket.ports = [40001, 40002, 40002, 40001, 40003]
    monkeypatch.setattr(procs.socket, "socket", _RepeatingSocket)

    env = airflow_env(settings={}, home=tmp_path, api_port=40001, dag_folders=[tmp_path], keys={}, base={})

    ports = [
        "40001",
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
        env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"],
    ]
    assert ports == ["40001", "40002", "40003"]


def test_a_free_port_is_bindable():
    port = procs.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((procs.LOOPBACK, port))

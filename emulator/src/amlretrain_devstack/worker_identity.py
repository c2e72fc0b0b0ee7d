"""``[core] hostname_callable`` of the distributed dev deployment: each Celery worker names itself.

Two workers on one machine share its host name; with ``AMLRETRAIN_WORKER_NAME`` set per worker, the
task instances each one runs carry that name as their ``hostname`` (shown in the UI and the REST API).
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """``AMLRETRAIN_WORKER_NAME`` where it is set, else the machine's fully qualified name."""
    return os.environ.get("AMLRETRAIN_WORKER_NAME") or socket.getfqdn()

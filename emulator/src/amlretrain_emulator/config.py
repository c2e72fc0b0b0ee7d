"""Configuration of the emulator: one dataclass, loaded from a JSON file and CLI flags."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: Keys accepted in the JSON config file (``state_dir`` may also come from the CLI).
CONFIG_KEYS = (
    "state_dir",
    "storage_connection_string",
    "job_concurrency",
    "min_job_seconds",
    "sas_ttl_seconds",
    "faults",
    "identity_header",
    "endpoint_update_delay_seconds",
    "max_endpoints_per_service",
    "arm_provisioning_seconds",
    "rrs_min_seconds",
)


@dataclass
class EmulatorConfig:
    """Everything the emulator can be tuned with.

    :param state_dir: directory holding the persisted workspace, services, keys and jobs.
    :param storage_connection_string: connection string of the storage account (Azurite) the
        emulator uses for its own blobs (seed data, ``Data URI`` reads without SAS, fresh SAS
        tokens for outputs that were addressed by SAS). Never printed nor logged.
    :param job_concurrency: number of BES jobs running at the same time (FIFO queue beyond).
    :param min_job_seconds: minimum wall-clock duration of a BES job, so polling is observable.
    :param sas_ttl_seconds: lifetime of the read-only SAS tokens handed out in job results.
    :param faults: initial fault-injection document (see :mod:`.faults`).
    :param identity_header: secret expected in ``X-IDENTITY-HEADER`` by the managed-identity
        token endpoint (``/msi/token``); ``None`` disables that endpoint.
    :param endpoint_update_delay_seconds: delay before a PATCHed classic endpoint serves its new model.
    :param max_endpoints_per_service: endpoints (the default one included) a classic web service may
        have: 3 in a free workspace, up to 10,000 in a paid one (the default).
    :param arm_provisioning_seconds: time an ARM PUT/PATCH stays ``Provisioning``.
    :param rrs_min_seconds: minimum duration of one RRS call (to make ``MaxConcurrentCalls`` testable).
    """

    state_dir: Path
    storage_connection_string: str | None = None
    job_concurrency: int = 2
    min_job_seconds: float = 0.5
    sas_ttl_seconds: int = 86400
    faults: dict[str, Any] = field(default_factory=dict)
    identity_header: str | None = None
    endpoint_update_delay_seconds: float = 0.0
    max_endpoints_per_service: int = 10_000
    arm_provisioning_seconds: float = 0.5
    rrs_min_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)
        if self.job_concurrency < 1:
            raise ValueError("job_concurrency must be >= 1")
        if self.max_endpoints_per_service < 1:
            raise ValueError("max_endpoints_per_service must be >= 1 (the default endpoint counts)")
        if self.min_job_seconds < 0 or self.sas_ttl_seconds < 1:
            raise ValueError("min_job_seconds must be >= 0 and sas_ttl_seconds >= 1")

    def __repr__(self) -> str:
        # Never show the connection string or the identity secret.
        shown = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("storage_connection_string", "identity_header")
        }
        return f"EmulatorConfig({shown!r}, storage_connection_string=<redacted>)"

    @classmethod
    def from_mapping(cls, data: dict[str, Any], **overrides: Any) -> EmulatorConfig:
        """Build a config from a JSON document plus overrides (``None`` overrides are ignored).

        :param data: the parsed config file.
        :param overrides: values given on the command line.
        """
        unknown = sorted(set(data) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"Unknown config keys: {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")
        merged = dict(data)
        merged.update({k: v for k, v in overrides.items() if v is not None})
        if "state_dir" not in merged:
            raise ValueError("state_dir is required (config file or --state-dir)")
        return cls(**merged)

    @classmethod
    def load(cls, path: str | Path | None, **overrides: Any) -> EmulatorConfig:
        """Load the JSON config file at ``path`` (optional) and apply ``overrides``.

        :param path: JSON file, or ``None`` for defaults only.
        :param overrides: values given on the command line.
        """
        data: dict[str, Any] = {}
        if path is not None:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("The config file must hold a JSON object")
        return cls.from_mapping(data, **overrides)

"""Apache Airflow provider for retraining Azure ML Studio (classic) models."""

from __future__ import annotations

__version__ = "0.1.0"

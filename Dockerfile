# The Airflow image of docker-compose.yaml: the official image with this provider installed.
# Versions: AIRFLOW_VERSION and CELERY_VERSION match the Makefile (a test checks it).
FROM apache/airflow:3.3.2-python3.11

ARG AIRFLOW_VERSION=3.3.2
ARG CELERY_VERSION=5.6.3

COPY --chown=airflow:root pyproject.toml README.md /opt/amlretrain/
COPY --chown=airflow:root airflow_provider_amlretrain /opt/amlretrain/airflow_provider_amlretrain
# The dev stack's compose_metadata (airflow-init writes the stack's connections with it) ships with the emulator.
COPY --chown=airflow:root emulator /opt/amlretrain/emulator
# celery 5.7.0 breaks the Celery provider (cannot import name 'retry' from 'celery.backends.database').
RUN pip install --no-cache-dir "/opt/amlretrain" "/opt/amlretrain/emulator" "apache-airflow==${AIRFLOW_VERSION}" "celery==${CELERY_VERSION}"

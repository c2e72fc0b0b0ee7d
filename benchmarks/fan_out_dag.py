"""
The fan-out benchmark's DAG: N endpoints retrained (deferrable), gated and promoted in one DAG run.

Built like ``dags/amlretrain_many_endpoints.py`` (one training web service reading its dataset from the
``Data URI`` global parameter, a mapped task group whose body is the same ``retrain_gate_promote``: retrain
>> evaluate >> promote per endpoint), with the BES waits deferred to the triggerer and no wait after an
endpoint update (the emulator serves at once).
``benchmarks/fan_out.py`` copies this file into a DAG folder of its own and sets, on every Airflow process:

- ``AMLRETRAIN_FANOUT_ENDPOINTS``: how many endpoints (``fan-out-000`` ...), each trained on its own blob
  ``training-data/fan-out/<endpoint>/train.csv`` (the benchmark uploads them and creates the endpoints);
- ``AMLRETRAIN_FANOUT_POLL_SECONDS`` / ``AMLRETRAIN_FANOUT_MAX_POLL_SECONDS``: the BES operator's first and
  longest wait between two status checks.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task, task_group

from airflow_provider_amlretrain.authoring import promotion_params, retrain_gate_promote, training_outputs

DAG_ID = "amlretrain_fan_out_bench"
WASB_CONN_ID = "azurite_default"
DATA_CONTAINER = "training-data"
ENDPOINTS_ENV = "AMLRETRAIN_FANOUT_ENDPOINTS"
POLL_SECONDS_ENV = "AMLRETRAIN_FANOUT_POLL_SECONDS"
MAX_POLL_SECONDS_ENV = "AMLRETRAIN_FANOUT_MAX_POLL_SECONDS"
END_FROM_TRIGGER_ENV = (
    "AMLRETRAIN_FANOUT_END_FROM_TRIGGER"  # "0": retrain resumes on a worker (before issue 12)
)


def endpoint_name(index: int) -> str:
    """
    The name of the ``index``-th endpoint (a valid classic endpoint name: at most 24 characters).

    :param index: 0 to N - 1.
    """
    return f"fan-out-{index:03d}"


def data_blob(endpoint: str) -> str:
    """
    The blob (in ``DATA_CONTAINER``) the endpoint's model is trained on.

    :param endpoint: The endpoint's name.
    """
    return f"fan-out/{endpoint}/train.csv"


with DAG(
    dag_id=DAG_ID,
    description="Benchmark: retrain, gate and promote N endpoints in one run (deferrable BES waits).",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["azureml", "benchmark"],
    doc_md=__doc__,
    params=promotion_params("the endpoints"),
) as dag:

    @task
    def plan(run_id: str | None = None) -> list[dict[str, Any]]:
        """One entry per endpoint: its name, the Data URI of its dataset and its output folder."""
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        account_url = WasbHook(wasb_conn_id=WASB_CONN_ID).get_conn().url.rstrip("/")
        # Mapped values come from XCom and are not templated: the run's folder is spelled out here.
        safe_run = (run_id or "manual").replace(":", "").replace("+", "")
        plans = []
        for index in range(int(os.environ.get(ENDPOINTS_ENV, "5"))):
            endpoint = endpoint_name(index)
            blob = data_blob(endpoint)
            plans.append(
                {
                    "endpoint": endpoint,
                    "target": f"binary-classic-{endpoint}",
                    "global_parameters": {"Data URI": f"{account_url}/{DATA_CONTAINER}/{blob}"},
                    "outputs": training_outputs(WASB_CONN_ID, "models", f"fan-out/{endpoint}/{safe_run}"),
                    "smoke_sample": f"{DATA_CONTAINER}/{blob}",
                }
            )
        return plans

    @task_group
    def retrain_and_promote(
        endpoint: str,
        target: str,
        global_parameters: dict[str, str],
        outputs: dict[str, Any],
        smoke_sample: str,
    ) -> None:
        """Retrain on the endpoint's data (waiting in the triggerer), gate, promote."""
        retrain_gate_promote(
            endpoint_name=endpoint,
            deployment_target=target,
            global_parameters=global_parameters,
            outputs=outputs,
            smoke_test_sample=smoke_sample,
            web_service_id="{{ var.value.amlretrain_binary_web_service_id }}",
            rules=[
                {"metric": "AUC", "min": 0.9},
                {"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.02},
            ],
            training_conn_id="azureml_train_binary",
            wasb_conn_id=WASB_CONN_ID,
            azureml_management_conn_id="azureml_management",
            smoke_test_drop_columns=["label"],
            deferrable=True,
            poll_interval=float(os.environ.get(POLL_SECONDS_ENV, "5")),
            max_poll_interval=float(os.environ.get(MAX_POLL_SECONDS_ENV, "30")),
            job_timeout=timedelta(hours=3),
            end_from_trigger=os.environ.get(END_FROM_TRIGGER_ENV, "1") == "1",
            wait_after_update=0,
        )

    retrain_and_promote.expand_kwargs(plan())

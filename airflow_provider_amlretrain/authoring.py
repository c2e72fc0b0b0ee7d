"""Pieces DAG files are built from: the Trigger form's promotion fields and a training job's usual outputs.

Every retrain-and-promote DAG needs the same two things around the operators: Params whose names match the
promotion operators' ``force`` and ``skip_promotion`` template fields, and a pair of output blobs (the trained
model and the evaluation) in a folder of its own per run. Building them here keeps the DAGs from drifting
apart::

    from airflow_provider_amlretrain.authoring import promotion_params, training_outputs

    with DAG(..., params=promotion_params("the endpoint")):
        retrain = AzureMLBatchExecutionOperator(
            ...,
            outputs=training_outputs("azure_blob", "models", "binary/{{ ds }}/" + RUN_FOLDER),
        )
        promote = AzureMLUpdateEndpointModelOperator(
            ..., force="{{ params.force }}", skip_promotion="{{ params.skip_promotion }}"
        )
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Param

#: A blob folder name for the run: its run id without the ``:`` and ``+`` that blob paths should not hold.
RUN_FOLDER = "{{ run_id | replace(':', '') | replace('+', '') }}"


def promotion_params(target: str = "the endpoint") -> dict[str, Param]:
    """
    The Trigger form's fields for the promotion operators' ``force`` and ``skip_promotion``.

    Both default to false, so scheduled and backfill runs promote normally. Pass them to the operators as
    ``force="{{ params.force }}"`` and ``skip_promotion="{{ params.skip_promotion }}"``: the operators read
    the rendered text strictly (``"False"`` is false).

    :param target: What is promoted to, as the form's description names it ("the endpoints", "the web
        service").
    """
    from airflow.sdk import Param

    return {
        "force": Param(
            False,
            type="boolean",
            title="Force promotion",
            description="Promote even over a model trained on newer data.",
        ),
        "skip_promotion": Param(
            False,
            type="boolean",
            title="Skip promotion",
            description=f"Retrain and gate, but leave {target} as it is.",
        ),
    }


def training_outputs(
    wasb_conn_id: str,
    container: str,
    folder: str,
    *,
    model_port: str = "output1",
    evaluation_port: str = "output2",
) -> dict[str, dict[str, str]]:
    """
    The output blob specs of a training web service: the trained model and the Evaluate Model result.

    The BES operator moves them into the attempt's own ``try-<n>/`` folder, so a retry or a clear never
    writes over an earlier job's model.

    :param wasb_conn_id: The ``wasb`` connection BES gets a SAS from (for these two blobs only).
    :param container: The container of the outputs; it must exist.
    :param folder: The run's folder in it, templated (for example ``"binary/{{ ds }}/" + RUN_FOLDER``).
    :param model_port: The training experiment's output port of the trained model (``.ilearner``).
    :param evaluation_port: Its output port of the evaluation (``.csv``).
    """
    folder = folder.rstrip("/")
    return {
        model_port: {
            "wasb_conn_id": wasb_conn_id,
            "container": container,
            "blob": f"{folder}/model.ilearner",
        },
        evaluation_port: {
            "wasb_conn_id": wasb_conn_id,
            "container": container,
            "blob": f"{folder}/evaluation.csv",
        },
    }

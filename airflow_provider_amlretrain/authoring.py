"""
Pieces DAG files are built from: the Trigger form's promotion fields, a training job's usual outputs, and
one endpoint's retrain >> evaluate >> promote.

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

Many endpoints trained through one web service repeat the same three tasks per endpoint: a mapped task group
whose body is :func:`retrain_gate_promote` (``dags/amlretrain_many_endpoints.py`` is the example)::

    @task_group
    def retrain_and_promote(endpoint, target, global_parameters, outputs, smoke_sample):
        retrain_gate_promote(
            endpoint_name=endpoint,
            deployment_target=target,
            ...,
        )

    retrain_and_promote.expand_kwargs(plan())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import timedelta

    from airflow.sdk import Param

    from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
    from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
    from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator

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


def retrain_gate_promote(
    *,
    endpoint_name: Any,
    deployment_target: Any,
    global_parameters: Any,
    outputs: Any,
    web_service_id: str,
    rules: Sequence[Mapping[str, Any]],
    training_conn_id: str,
    wasb_conn_id: str,
    azureml_management_conn_id: str,
    smoke_test_sample: Any = None,
    smoke_test_drop_columns: Sequence[str] | None = None,
    deferrable: bool | None = None,
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
    job_timeout: timedelta | float | None = None,
    end_from_trigger: bool | None = None,
    wait_after_update: float | str | None = None,
    force: bool | str = "{{ params.force }}",
    skip_promotion: bool | str = "{{ params.skip_promotion }}",
    retrain_kwargs: Mapping[str, Any] | None = None,
    evaluate_kwargs: Mapping[str, Any] | None = None,
    promote_kwargs: Mapping[str, Any] | None = None,
) -> tuple[AzureMLBatchExecutionOperator, AzureMLEvaluationGateOperator, AzureMLUpdateEndpointModelOperator]:
    """
    Add one endpoint's retrain >> evaluate >> promote: a BES job, the evaluation gate, the endpoint update.

    Call it inside a ``@task_group`` function and map the group with ``expand_kwargs`` over one dict per
    endpoint: the group's arguments (mapped arguments, resolved per endpoint when the tasks run) go to the
    first five parameters, and everything else is the same for every endpoint. The tasks' ids are
    ``retrain``, ``evaluate`` and ``promote`` (``<group_id>.retrain`` in the group); ``evaluate`` reads the
    job's result, ``promote`` the job's result and the gate's decision, from XCom.

    Arguments left at ``None`` keep the operator's own default.

    :param endpoint_name: The endpoint to put the model on (created if it does not exist).
    :param deployment_target: The deployment record's name, distinct per endpoint: the gate compares with
        the model it records, and the promotion refuses older data per target.
    :param global_parameters: The BES job's web service parameters, e.g. ``{"Data URI": ...}``.
    :param outputs: The BES job's output blobs, usually :func:`training_outputs`.
    :param web_service_id: The *predictive* web service whose endpoint is updated (templated).
    :param rules: The gate's rules, e.g. ``[{"metric": "AUC", "min": 0.9}]``.
    :param training_conn_id: The training web service's connection: BES runs there.
    :param wasb_conn_id: The storage account of the outputs and the deployment records.
    :param azureml_management_conn_id: The workspace's management connection (endpoint updates).
    :param smoke_test_sample: A ``container/blob`` CSV a few rows of which the new model scores before the
        promotion is kept; ``None`` skips the smoke test.
    :param smoke_test_drop_columns: The sample's columns the service does not take (the label).
    :param deferrable: Wait for the BES job in the triggerer.
    :param poll_interval: The BES operator's first wait between two status checks, in seconds.
    :param max_poll_interval: Its longest wait between two status checks, in seconds.
    :param job_timeout: How long the BES job may take.
    :param end_from_trigger: With ``deferrable``, end ``retrain`` in the triggerer when its job finished
        (no resumption on a worker: one task execution fewer per endpoint).
    :param wait_after_update: Seconds to wait after an endpoint update before the smoke test, or a template
        that renders them.
    :param force: The promotion's ``force``; the default reads the Trigger form's field of
        :func:`promotion_params`.
    :param skip_promotion: The promotion's ``skip_promotion``; the default reads the Trigger form's field of
        :func:`promotion_params`.
    :param retrain_kwargs: Further arguments of the ``retrain`` task
        (:class:`~airflow_provider_amlretrain.operators.batch_execution.AzureMLBatchExecutionOperator`),
        e.g. ``{"pool": "aml_workspace_x"}``.
    :param evaluate_kwargs: Further arguments of the ``evaluate`` task
        (:class:`~airflow_provider_amlretrain.operators.evaluation_gate.AzureMLEvaluationGateOperator`),
        e.g. ``{"on_reject": "fail"}``.
    :param promote_kwargs: Further arguments of the ``promote`` task
        (:class:`~airflow_provider_amlretrain.operators.update_endpoint_model.AzureMLUpdateEndpointModelOperator`).
    :return: The tasks ``(retrain, evaluate, promote)``, e.g. to add tasks downstream of ``promote``.
    """
    from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
    from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
    from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator

    retrain = AzureMLBatchExecutionOperator(
        **_arguments(
            "retrain_kwargs",
            retrain_kwargs,
            task_id="retrain",
            azureml_conn_id=training_conn_id,
            global_parameters=global_parameters,
            outputs=outputs,
            deferrable=deferrable,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            job_timeout=job_timeout,
            end_from_trigger=end_from_trigger,
        )
    )
    evaluate = AzureMLEvaluationGateOperator(
        **_arguments(
            "evaluate_kwargs",
            evaluate_kwargs,
            task_id="evaluate",
            training_result=retrain.output,
            wasb_conn_id=wasb_conn_id,
            deployment_target=deployment_target,
            rules=rules,
        )
    )
    promote = AzureMLUpdateEndpointModelOperator(
        **_arguments(
            "promote_kwargs",
            promote_kwargs,
            task_id="promote",
            deployment_target=deployment_target,
            training_result=retrain.output,
            gate_result=evaluate.output,
            training_conn_id=training_conn_id,
            wasb_conn_id=wasb_conn_id,
            azureml_management_conn_id=azureml_management_conn_id,
            web_service_id=web_service_id,
            endpoint_name=endpoint_name,
            smoke_test_sample=smoke_test_sample,
            smoke_test_drop_columns=smoke_test_drop_columns,
            wait_after_update=wait_after_update,
            force=force,
            skip_promotion=skip_promotion,
        )
    )
    retrain >> evaluate >> promote
    return retrain, evaluate, promote


def _arguments(name: str, further: Mapping[str, Any] | None, **given: Any) -> dict[str, Any]:
    """
    One operator's arguments: those :func:`retrain_gate_promote` was given (``None``: the operator's default)
    and the caller's further ones, which must not set any of them.

    :param name: The parameter the further arguments came in, for the error.
    :param further: The caller's further arguments of the operator.
    :param given: The arguments the factory sets, ``None`` where it leaves the operator's default.
    """
    from airflow_provider_amlretrain.exceptions import AzureMLConfigError

    further = dict(further or {})
    if clash := sorted(set(further) & set(given)):
        raise AzureMLConfigError(
            f"{name} sets {clash}, which retrain_gate_promote sets itself: drop them from {name} and use "
            "retrain_gate_promote's own parameters (the task ids and the XCom wiring are fixed; name the task "
            "group instead)."
        )
    return {key: value for key, value in given.items() if value is not None} | further

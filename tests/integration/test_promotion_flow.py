"""Real Airflow runs against Azurite and the emulator: gate, promote, smoke-test, roll back, race, backfill."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import EmulatorAdmin, dump, seeded_dates, utc

pytestmark = pytest.mark.integration

WASB = "azurite_default"
MANAGEMENT = "azureml_management"


def flow_dag(dag_id: str):
    from airflow_provider_amlretrain.devstack.dagrun import load_dag_file

    return load_dag_file(REPO_ROOT / "tests/integration/dags/promotion_test_dags.py", dag_id)


@pytest.fixture
def dates(seed: dict[str, Any]) -> list[str]:
    found = seeded_dates(seed)
    assert len(found) >= 4, dump(seed)
    return found


def predictive(seed: dict[str, Any], task: str = "binary") -> dict[str, Any]:
    return next(s for s in seed["services"] if s["kind"] == "predictive" and s["task"] == task)


def training(seed: dict[str, Any], task: str = "binary") -> dict[str, Any]:
    return next(s for s in seed["services"] if s["kind"] == "training" and s["task"] == task)


def management():
    from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook

    return AzureMLClassicManagementHook(MANAGEMENT)


def endpoint_model(seed: dict[str, Any], endpoint: str) -> str:
    """``container/blob`` of the model an endpoint serves now."""
    resource = management().get_endpoint(predictive(seed)["web_service_id"], endpoint).trained_model(None)
    assert resource.location is not None
    return resource.location.relative_location


def probabilities(seed: dict[str, Any], endpoint: str) -> list[str]:
    """What an endpoint predicts for the seeded sample rows."""
    from airflow_provider_amlretrain.promotion.smoke_test import load_sample

    hook = management()
    sample = load_sample(WASB, training(seed)["sample_blob"], max_rows=5)
    found = hook.get_endpoint(predictive(seed)["web_service_id"], endpoint)
    return hook.score(found, input_name="input1", columns=sample.columns, rows=sample.rows).column(
        "Scored Probabilities"
    )


# Data-independent gate: the seeded days differ (AUC about 0.92 to 1.0), so a test about what happens
# after the gate passes must not depend on how one day compares with another.
ALWAYS_PROMOTE = [{"metric": "AUC", "min": 0.5}]


def record(target: str):
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    return DeploymentRecordStore(WASB, "deployments").read(target)


def test_better_model_is_promoted_and_serves(run, seed, dates) -> None:
    outcome = run(
        flow_dag("promote_classic"), utc(dates[-1]), run_conf={"target": "t-better", "endpoint": "better"}
    )

    assert outcome.state == "success", dump(outcome.task_states)
    trained = outcome.xcom("retrain")["outputs"]["output1"]["relative_location"]
    assert endpoint_model(seed, "better") == trained
    result = outcome.xcom("promote")
    assert result["outcome"] == "deployed" and len(result["smoke_test"]["predictions"]) == 5
    assert "sig=" not in repr(result)
    current = record("t-better").record.current
    assert current["model_uri"].endswith(trained) and current["metrics"]["AUC"] > 0.8
    assert current["data_interval_end"].startswith(dates[-1]) or current["data_interval_start"].startswith(
        dates[-1]
    )
    assert probabilities(seed, "better") != probabilities(seed, "default"), (
        "the new model must change predictions"
    )


def test_worse_model_is_rejected_and_the_endpoint_is_unchanged(run, seed, dates) -> None:
    first = run(
        flow_dag("promote_classic"), utc(dates[-3]), run_conf={"target": "t-worse", "endpoint": "worse"}
    )
    assert first.state == "success", dump(first.task_states)
    deployed = endpoint_model(seed, "worse")
    # Production now claims an AUC above any real model's (AUC <= 1.0) and no tolerance is given, so
    # whichever day the next run trains on, its model is worse.
    versioned = record("t-worse")
    versioned.record.current["metrics"]["AUC"] = 1.0001
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    DeploymentRecordStore(WASB, "deployments").write(versioned.record, versioned.etag)
    rules = [{"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.0}]

    second = run(
        flow_dag("promote_classic"),
        utc(dates[-2]),
        run_conf={"target": "t-worse", "endpoint": "worse", "rules": rules},
    )

    assert second.state == "success", "a rejected model must leave the run green"
    assert second.task_states["evaluate"] == "skipped" and second.task_states["promote"] == "skipped"
    decision = second.xcom("evaluate", "gate_decision")
    assert decision["promote"] is False and decision["baseline_metrics"]["AUC"] == 1.0001
    assert "worse by" in decision["verdicts"][0]["reason"]
    assert endpoint_model(seed, "worse") == deployed


def test_web_service_promotion_applies_a_json_patch(run, seed, dates) -> None:
    from airflow_provider_amlretrain.hooks.web_services import AzureMLWebServicesHook

    outcome = run(flow_dag("promote_web_service"), utc(dates[-1]), run_conf={"target": "t-arm"})

    assert outcome.state == "success", dump(outcome.task_states)
    result = outcome.xcom("promote")
    patch = result["details"]["json_patch"]
    assert [op["op"] for op in patch] == ["test", "replace"]
    assert patch[0]["value"] == result["previous_model_uri"] and patch[1]["value"] == result["model_uri"]
    name = seed["arm"]["web_services"][0]["name"]
    definition = AzureMLWebServicesHook("azureml_arm").get_web_service(name)
    asset = definition["properties"]["assets"][result["details"]["asset_key"]]
    assert asset["locationInfo"]["uri"] == result["model_uri"]
    assert definition["properties"]["provisioningState"] == "Succeeded"


def test_failing_smoke_test_rolls_back(run, seed, dates) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    first = run(
        flow_dag("promote_classic"), utc(dates[-3]), run_conf={"target": "t-rollback", "endpoint": "rollback"}
    )
    assert first.state == "success", dump(first.task_states)
    deployed = endpoint_model(seed, "rollback")
    WasbHook(wasb_conn_id=WASB).load_string(
        "colour,size\nred,3\n", "training-data", "tests/wrong-columns.csv", overwrite=True
    )

    second = run(
        flow_dag("promote_classic"),
        utc(dates[-1]),
        run_conf={
            "target": "t-rollback",
            "endpoint": "rollback",
            "smoke_sample": "training-data/tests/wrong-columns.csv",
            "rules": ALWAYS_PROMOTE,
        },
    )

    assert second.task_states["evaluate"] == "success", dump(second.task_states)
    assert second.task_states["promote"] == "failed"
    assert endpoint_model(seed, "rollback") == deployed, "the previous model must be back"
    versioned = record("t-rollback")
    assert versioned.record.current["model_uri"].endswith(deployed)
    assert versioned.record.history[-1]["outcome"] == "rolled_back"
    assert versioned.record.pending is None


def test_missing_smoke_sample_fails_before_the_endpoint_changes(run, seed, dates, capfd) -> None:
    first = run(
        flow_dag("promote_classic"), utc(dates[-3]), run_conf={"target": "t-nosample", "endpoint": "nosample"}
    )
    assert first.state == "success", dump(first.task_states)
    deployed = endpoint_model(seed, "nosample")
    history = len(record("t-nosample").record.history)

    second = run(
        flow_dag("promote_classic"),
        utc(dates[-1]),
        run_conf={
            "target": "t-nosample",
            "endpoint": "nosample",
            "smoke_sample": "training-data/tests/absent.csv",
            "rules": ALWAYS_PROMOTE,
        },
    )

    assert second.task_states["evaluate"] == "success", dump(second.task_states)
    assert second.task_states["promote"] == "failed"
    log = capfd.readouterr()
    assert "The smoke-test sample training-data/tests/absent.csv does not exist" in log.out + log.err
    assert endpoint_model(seed, "nosample") == deployed, "the endpoint must never have changed"
    versioned = record("t-nosample")
    assert versioned.record.current["model_uri"].endswith(deployed)
    assert len(versioned.record.history) == history and versioned.record.pending is None, "nothing claimed"


def test_older_data_never_replaces_newer_data_unless_forced(run, seed, dates) -> None:
    newer = run(
        flow_dag("promote_classic"), utc(dates[-1]), run_conf={"target": "t-backfill", "endpoint": "backfill"}
    )
    assert newer.state == "success", dump(newer.task_states)
    newer_model = endpoint_model(seed, "backfill")

    older = run(
        flow_dag("promote_classic"),
        utc(dates[-4]),
        run_conf={"target": "t-backfill", "endpoint": "backfill", "rules": ALWAYS_PROMOTE},
    )
    assert older.state == "success", dump(older.task_states)
    assert older.task_states["evaluate"] == "success", "the gate passed: the older data alone must stop it"
    assert older.task_states["promote"] == "skipped", dump(older.task_states)
    assert endpoint_model(seed, "backfill") == newer_model

    forced = run(
        flow_dag("promote_classic"),
        utc(dates[-4]),
        run_conf={"target": "t-backfill", "endpoint": "backfill", "force": True, "rules": ALWAYS_PROMOTE},
    )
    assert forced.task_states["promote"] == "success", dump(forced.task_states)
    assert (
        endpoint_model(seed, "backfill") == forced.xcom("retrain")["outputs"]["output1"]["relative_location"]
    )


def test_patch_throttling_and_unavailability_are_survived_once(
    run, seed, dates, emulator: EmulatorAdmin
) -> None:
    emulator.set_faults(
        {
            "rules": [
                {"method": "PATCH", "path": "/endpoints/faulty$", "status": 503, "times": 1},
                {
                    "method": "PATCH",
                    "path": "/endpoints/faulty$",
                    "status": 429,
                    "retry_after": 1,
                    "times": 1,
                },
            ]
        }
    )
    outcome = run(
        flow_dag("promote_classic"), utc(dates[-1]), run_conf={"target": "t-faults", "endpoint": "faulty"}
    )

    assert outcome.state == "success", dump(outcome.task_states)
    assert outcome.try_numbers["promote"] == 1
    assert [r for r in emulator.faults().get("rules", []) if r.get("times", 0) > 0] == []
    versioned = record("t-faults")
    assert versioned.record.current["run_id"] == outcome.run_id
    assert versioned.record.history == [], "exactly one deployment, no failed or repeated attempt"


def _promotion_operator(seed: dict[str, Any], **kwargs: Any):
    from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator

    defaults = {
        "task_id": "promote",
        "deployment_target": "t-direct",
        "training_result": {"job_id": "0" * 32, "outputs": {}},
        "training_conn_id": "azureml_train_binary",
        "wasb_conn_id": WASB,
        "azureml_management_conn_id": MANAGEMENT,
        "web_service_id": predictive(seed)["web_service_id"],
        "endpoint_name": "direct",
        "wait_after_update": 0,
    }
    return AzureMLUpdateEndpointModelOperator(**{**defaults, **kwargs})


@pytest.fixture(scope="module")
def trained(stack: Any, airflow_db: None) -> dict[str, Any]:
    """One finished training job (its result, as the BES operator returns it)."""
    from airflow_provider_amlretrain.api.bes import build_batch_request
    from airflow_provider_amlretrain.api.polling import JobPollingRules
    from airflow_provider_amlretrain.api.references import BlobReference
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    hook = AzureMLStudioHook("azureml_train_binary")
    cs = stack.connection_string
    body = build_batch_request(
        inputs={"input1": BlobReference(training(stack.seed)["blobs"][0]["relative_location"], cs)},
        outputs={
            "output1": BlobReference("models/tests/direct/model.ilearner", cs),
            "output2": BlobReference("models/tests/direct/evaluation.csv", cs),
        },
    )
    job_id = hook.submit_job(body)
    hook.start_job(job_id)
    state = hook.wait_for_job(job_id, JobPollingRules(poll_interval=0.2))
    assert state.status.value == "Finished", state
    return {**state.to_summary(), "duration_seconds": 0}


def test_troubleshooting_cases_give_clear_errors(stack, seed, trained) -> None:
    from airflow_provider_amlretrain.exceptions import AzureMLConfigError

    _, model = _promotion_operator(seed, training_result=trained).fresh_model_location()

    with pytest.raises(AzureMLConfigError, match="default endpoint .* non-default endpoint_name"):
        _promotion_operator(seed, endpoint_name="default").deploy(model)
    with pytest.raises(AzureMLConfigError, match="training web service.*predictive"):
        _promotion_operator(
            seed, web_service_id=training(seed)["web_service_id"], endpoint_name="on-training"
        ).deploy(model)
    assert management().find_endpoint(training(seed)["web_service_id"], "on-training") is None, (
        "nothing created"
    )
    with pytest.raises(AzureMLConfigError, match="no resource named 'Nope'.*Breast Cancer Model"):
        _promotion_operator(seed, resource_name="Nope", endpoint_name="wrong-name").deploy(model)


def test_expired_sas_is_refused_with_a_clear_message(stack, seed, trained) -> None:
    from datetime import timedelta

    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    from airflow_provider_amlretrain.api.references import BlobLocation
    from airflow_provider_amlretrain.exceptions import AzureMLApiError

    info = stack.info["azurite"]
    relative = trained["outputs"]["output1"]["relative_location"]
    container, blob = relative.split("/", 1)
    sas = generate_blob_sas(
        info["account_name"],
        container,
        blob,
        account_key=info["account_key"],
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) - timedelta(hours=1),
    )
    expired = BlobLocation(trained["outputs"]["output1"]["base_location"], relative, "?" + sas)
    hook = management()
    web_service = predictive(seed)["web_service_id"]
    hook.create_endpoint(web_service, "expired-sas")
    resource = hook.get_endpoint(web_service, "expired-sas").trained_model(None)

    with pytest.raises(AzureMLApiError) as caught:
        hook.patch_trained_model(web_service, "expired-sas", resource.name, expired)
    assert caught.value.status_code == 400
    assert "SAS" in str(caught.value) or "expired" in str(caught.value).lower()
    assert sas.split("sig=")[1][:10] not in str(caught.value)


def test_wrong_host_is_reported_as_unreachable(monkeypatch, stack) -> None:
    import json
    import socket

    from airflow_provider_amlretrain.exceptions import AzureMLTransportError
    from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_AZUREML_MANAGEMENT_WRONG_REGION",
        json.dumps(
            {
                "conn_type": "azureml_classic_management",
                "host": f"http://127.0.0.1:{closed_port}",
                "password": "token",
                "extra": {"workspace_id": "ws", "max_retries": 0},
            }
        ),
    )
    with pytest.raises(AzureMLTransportError, match="region"):
        AzureMLClassicManagementHook("azureml_management_wrong_region").get_web_service("x")


def test_two_concurrent_promotions_exactly_one_wins(stack, seed, trained, monkeypatch) -> None:
    from airflow_provider_amlretrain.exceptions import DeploymentConflictError
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    barrier = threading.Barrier(2, timeout=30)
    original_read = DeploymentRecordStore.read

    def read_then_wait(self, target):
        versioned = original_read(self, target)
        if threading.current_thread().name.startswith("race-"):
            barrier.wait()  # both runs hold the same ETag before either writes
        return versioned

    monkeypatch.setattr(DeploymentRecordStore, "read", read_then_wait)
    outcomes: dict[str, Any] = {}

    def promote(run_id: str) -> None:
        operator = _promotion_operator(
            seed, training_result=trained, deployment_target="t-race", endpoint_name="race"
        )
        context = {
            "dag": type("Dag", (), {"dag_id": "race"})(),
            "run_id": run_id,
            "data_interval_start": utc(seeded_dates(seed)[0]),
            "data_interval_end": utc(seeded_dates(seed)[0]),
        }
        try:
            outcomes[run_id] = operator.execute(context)
        except Exception as err:
            outcomes[run_id] = err

    threads = [threading.Thread(target=promote, args=(f"run-{i}",), name=f"race-{i}") for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    winners = [r for r in outcomes.values() if isinstance(r, dict)]
    losers = [r for r in outcomes.values() if isinstance(r, DeploymentConflictError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert record("t-race").record.current["run_id"] == next(
        k for k, v in outcomes.items() if isinstance(v, dict)
    )


def test_many_endpoints_each_get_their_own_model(run, seed, dates) -> None:
    from airflow_provider_amlretrain.devstack.dagrun import load_dag_file

    outcome = run(load_dag_file(REPO_ROOT / "dags/amlretrain_many_endpoints.py"), utc(dates[-1]))

    assert outcome.state == "success", dump(outcome.task_states)
    promoted = {
        name: state
        for name, state in outcome.task_states.items()
        if name.startswith("retrain_and_promote.promote")
    }
    assert len(promoted) == 3 and set(promoted.values()) == {"success"}, dump(outcome.task_states)
    models = {endpoint_model(seed, name) for name in ("region-east", "region-west", "region-south")}
    assert len(models) == 3, "each endpoint must serve the model trained on its own data"
    jobs = {outcome.xcom(f"retrain_and_promote.retrain[{i}]")["job_id"] for i in range(3)}
    assert len(jobs) == 3

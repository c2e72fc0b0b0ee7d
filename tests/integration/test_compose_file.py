"""
docker-compose.yaml is a real deployment, checked as a file (there is no Docker engine here): every
service, healthchecks and ``depends_on``, versions matching pyproject.toml, the Makefile and
package.json, every mounted path existing, Airflow's settings from the one file ``make distributed``
reads, and a connection for every connection id the example DAGs use.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from tests.conftest import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
AIRFLOW_SERVICES = {
    "airflow-init": None,
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
EXPECTED = {"postgres", "redis", "azurite", "emulator", *AIRFLOW_SERVICES}


def makefile_value(name: str) -> str:
    """A ``NAME := value`` of the Makefile."""
    found = re.search(rf"^{name}\s*:?=\s*(\S+)", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert found, f"the Makefile sets no {name}"
    return found.group(1)


def dockerfile_args() -> dict[str, str]:
    """``ARG NAME=value`` lines of the Dockerfile."""
    return dict(re.findall(r"^ARG (\w+)=(\S+)", (REPO_ROOT / "Dockerfile").read_text(), re.M))


def test_every_service_of_the_deployment_is_there() -> None:
    assert set(SERVICES) == EXPECTED
    for name, command in AIRFLOW_SERVICES.items():
        if command:
            assert SERVICES[name]["command"] == command, name


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        if name == "airflow-init":  # a one-shot job: the others wait for it to complete
            assert "healthcheck" not in service
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_depends_on_names_real_services_and_waits_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in SERVICES, f"{name} depends on a missing service {needed}"
            expected = "service_completed_successfully" if needed == "airflow-init" else "service_healthy"
            assert how["condition"] == expected, f"{name} -> {needed}: {how}"
    for name in AIRFLOW_SERVICES:
        needs = set(SERVICES[name]["depends_on"])
        assert {"postgres", "redis"} <= needs, f"{name} must wait for the metadata DB and the broker"
        if name != "airflow-init":
            assert "airflow-init" in needs, f"{name} must wait for the migration"
    assert "emulator" in SERVICES["airflow-init"]["depends_on"], "the connections come from the seed"
    assert "azurite" in SERVICES["emulator"]["depends_on"]


def test_versions_match_pyproject_makefile_and_package_json() -> None:
    airflow_version = makefile_value("AIRFLOW_VERSION")
    args = dockerfile_args()
    base = re.search(r"^FROM (\S+)", (REPO_ROOT / "Dockerfile").read_text(), re.M)
    assert base and base.group(1) == f"apache/airflow:{airflow_version}-python3.11"
    assert args == {"AIRFLOW_VERSION": airflow_version, "CELERY_VERSION": makefile_value("CELERY_VERSION")}
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    requirement = re.search(r'"apache-airflow(>=[^"]+)"', pyproject)
    assert requirement and airflow_version in SpecifierSet(requirement.group(1))
    python = re.search(r'requires-python = "([^"]+)"', pyproject)
    assert python and "3.11" in SpecifierSet(python.group(1))
    azurite = json.loads((REPO_ROOT / "package.json").read_text())["dependencies"]["azurite"]
    assert SERVICES["azurite"]["image"].endswith(f":{azurite.lstrip('^~')}")
    for name in AIRFLOW_SERVICES:
        assert SERVICES[name]["build"] == ".", f"{name} must run the image of ./Dockerfile"
        assert SERVICES[name]["image"] == f"amlretrain-airflow:{airflow_version}"


def test_every_mounted_path_exists() -> None:
    created_by_compose = {".amlretrain-docker"}  # the emulator writes its seed there; git-ignored
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in COMPOSE["volumes"], f"{name}: named volume {source} is not declared"
                continue
            relative = source.removeprefix("./") or "."
            if relative in created_by_compose:
                assert f"{relative}/" in ignored
                continue
            assert (REPO_ROOT / relative).exists(), f"{name} mounts {source}, which does not exist"
    assert "./dags:/opt/airflow/dags:ro" in SERVICES["airflow-scheduler"]["volumes"]


def test_airflow_settings_come_from_the_file_make_distributed_reads() -> None:
    from amlretrain_devstack.airflow_settings import SETTINGS_FILE, read_settings

    settings = read_settings(REPO_ROOT / SETTINGS_FILE)
    assert settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert settings["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] == "True"
    for name in AIRFLOW_SERVICES:
        service = SERVICES[name]
        assert service["env_file"] == [str(SETTINGS_FILE)], name
        overridden = set(service["environment"]) & set(settings)
        assert not overridden, f"{name} overrides {overridden} of {SETTINGS_FILE}: they would drift apart"


def test_the_dockerfile_installs_the_provider_it_copies() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M)
    for line in copied:
        for path in line.split():
            assert (REPO_ROOT / path).exists(), f"the Dockerfile copies {path}, which does not exist"
    assert '"/opt/amlretrain"' in text


def dag_connection_ids() -> set[str]:
    """Every connection id the example DAGs name."""
    ids: set[str] = set()
    for path in (REPO_ROOT / "dags").glob("*.py"):
        ids |= set(re.findall(r'conn_id\s*=\s*"([a-z0-9_]+)"', path.read_text()))
        ids |= set(re.findall(r'CONN_ID\s*=\s*"([a-z0-9_]+)"', path.read_text()))
    return ids


@pytest.mark.integration
def test_airflow_init_writes_a_connection_for_every_id_the_dags_use(seed: dict[str, Any]) -> None:
    from amlretrain_devstack.compose_metadata import compose_stack, import_documents

    command = "\n".join(SERVICES["airflow-init"]["command"])
    url = re.search(r"--emulator-url (\S+)", command)
    assert url and url.group(1) == "http://emulator:8080"
    assert "--port 8080" in "\n".join(SERVICES["emulator"]["command"])
    storage = SERVICES["airflow-apiserver"]["environment"]["AMLRETRAIN_STORAGE_CONNECTION_STRING"]
    assert "BlobEndpoint=http://azurite:10000/" in storage
    documents = import_documents(compose_stack(seed, url.group(1), storage))
    used = dag_connection_ids()
    assert {"azurite_default", "azureml_train_binary", "azureml_management"} <= used
    assert used <= set(documents["connections"]), used - set(documents["connections"])
    for connection in documents["connections"].values():
        host = connection.get("host", "")
        assert not host or host.startswith("http://emulator:8080"), connection["conn_type"]


def test_airflow_containers_get_arm_tokens_from_the_emulators_managed_identity() -> None:
    """azure-identity's App Service variables name the emulator's token endpoint and the secret it expects."""
    from amlretrain_devstack.emulator_service import MSI_PATH

    emulator = SERVICES["emulator"]
    secret = emulator["environment"]["AMLRETRAIN_EMULATOR_IDENTITY_HEADER"]
    assert secret, "the emulator's managed-identity endpoint is off without a secret"
    script = "\n".join(emulator["command"])
    assert 'config["identity_header"] = os.environ["AMLRETRAIN_EMULATOR_IDENTITY_HEADER"]' in script
    for name in AIRFLOW_SERVICES:
        environment = SERVICES[name]["environment"]
        assert environment["IDENTITY_ENDPOINT"] == f"http://emulator:8080{MSI_PATH}", name
        assert environment["IDENTITY_HEADER"] == secret, f"{name} would send the wrong X-IDENTITY-HEADER"


def test_the_arm_connection_uses_managed_identity_and_the_provider_accepts_its_http_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_amlretrain.hooks.web_services import AzureMLWebServicesHook
    from amlretrain_devstack.compose_metadata import compose_stack, import_documents

    seed = {"arm": {"subscription_id": "sub", "resource_group": "rg"}}
    documents = import_documents(compose_stack(seed, "http://emulator:8080", "UseDevelopmentStorage=true"))
    arm = documents["connections"]["azureml_arm"]
    extra = json.loads(arm["extra"])
    assert arm["host"] == "http://emulator:8080"
    assert extra["use_managed_identity"] is True and extra["http_emulator"] is True
    monkeypatch.setenv("AIRFLOW_CONN_AZUREML_ARM", json.dumps({**arm, "extra": extra}))
    hook = AzureMLWebServicesHook("azureml_arm")
    assert hook.api.base.startswith("http://emulator:8080/subscriptions/sub/")  # not refused as plain http
    assert type(hook.credential).__name__ == "ManagedIdentityCredential"

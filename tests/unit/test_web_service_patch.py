"""JSON Patch edits of a new-style web service definition's trained-model asset."""

from __future__ import annotations

import copy

import pytest

from airflow_provider_amlretrain.exceptions import WebServicePatchError
from airflow_provider_amlretrain.promotion.web_service_patch import (
    TrainedModelAsset,
    apply_patch,
    build_model_patch,
    find_trained_model_asset,
    inverse_model_patch,
)

OLD = "https://acct.blob.core.windows.net/models/v1/model.ilearner"
NEW = "https://acct.blob.core.windows.net/models/v2/model.ilearner"


def definition(**extra_assets):
    assets = {
        "asset1": {
            "name": "Retrain Sample [data]",
            "type": "Module",
            "locationInfo": {"uri": "aml://module/x"},
        },
        "asset3": {
            "name": "Retrain Sample [trained model]",
            "type": "Resource",
            "locationInfo": {"uri": OLD},
        },
        **extra_assets,
    }
    return {
        "id": "/subscriptions/s/.../ws1",
        "name": "ws1",
        "location": "South Central US",
        "properties": {"title": "t", "assets": assets},
    }


def test_finds_the_one_resource_asset_with_an_ilearner():
    asset = find_trained_model_asset(definition())
    assert asset == TrainedModelAsset(key="asset3", name="Retrain Sample [trained model]", uri=OLD)
    assert asset.uri_path == "/properties/assets/asset3/locationInfo/uri"


def test_ilearner_uri_with_a_query_still_counts():
    d = definition()
    d["properties"]["assets"]["asset3"]["locationInfo"]["uri"] = OLD + "?sv=1&sig=x"
    assert find_trained_model_asset(d).key == "asset3"


def test_several_trained_models_need_a_key_or_name():
    extra = {"asset9": {"name": "Other [trained model]", "type": "Resource", "locationInfo": {"uri": NEW}}}
    d = definition(**extra)
    with pytest.raises(
        WebServicePatchError,
        match=r"several trained-model assets \(asset3, asset9\).*asset_key or asset_name",
    ):
        find_trained_model_asset(d)
    assert find_trained_model_asset(d, asset_key="asset9").uri == NEW
    assert find_trained_model_asset(d, asset_name="Retrain Sample [trained model]").key == "asset3"


def test_unknown_key_or_name_lists_the_assets():
    with pytest.raises(
        WebServicePatchError, match=r"no asset 'asset7'; its assets are: asset1 \('Retrain Sample \[data\]'"
    ):
        find_trained_model_asset(definition(), asset_key="asset7")
    with pytest.raises(WebServicePatchError, match=r"no asset named 'Nope'; its assets are: .*asset3"):
        find_trained_model_asset(definition(), asset_name="Nope")


@pytest.mark.parametrize("properties", [{}, {"assets": {}}, {"assets": []}])
def test_definition_without_assets_is_refused(properties):
    with pytest.raises(WebServicePatchError, match="no properties.assets"):
        find_trained_model_asset({"properties": properties})


def test_no_ilearner_resource_is_refused():
    d = definition()
    d["properties"]["assets"]["asset3"]["locationInfo"]["uri"] = (
        "https://acct.blob.core.windows.net/models/v1/model.zip"
    )
    with pytest.raises(WebServicePatchError, match="no Resource asset with an .ilearner"):
        find_trained_model_asset(d)


def test_asset_without_uri_is_refused():
    d = definition(asset5={"name": "Empty", "type": "Resource"})
    with pytest.raises(WebServicePatchError, match="'asset5' has no locationInfo.uri"):
        find_trained_model_asset(d, asset_key="asset5")


def test_patch_tests_then_replaces():
    asset = find_trained_model_asset(definition())
    patch = build_model_patch(asset, NEW)
    assert patch == [
        {"op": "test", "path": "/properties/assets/asset3/locationInfo/uri", "value": OLD},
        {"op": "replace", "path": "/properties/assets/asset3/locationInfo/uri", "value": NEW},
    ]


def test_patch_refuses_a_non_ilearner():
    asset = find_trained_model_asset(definition())
    with pytest.raises(
        WebServicePatchError, match=r"'https://acct.blob.core.windows.net/m/x.csv' is not an .ilearner"
    ):
        build_model_patch(asset, "https://acct.blob.core.windows.net/m/x.csv?sig=secret")


def test_keys_with_slashes_and_tildes_are_escaped_as_json_pointer():
    d = {"properties": {"assets": {"a/b~c": {"name": "m", "type": "Resource", "locationInfo": {"uri": OLD}}}}}
    asset = find_trained_model_asset(d)
    assert asset.uri_path == "/properties/assets/a~1b~0c/locationInfo/uri"
    patched = apply_patch(d, build_model_patch(asset, NEW))
    assert patched["properties"]["assets"]["a/b~c"]["locationInfo"]["uri"] == NEW


def test_apply_works_on_a_copy_and_inverse_restores():
    d = definition()
    before = copy.deepcopy(d)
    patch = build_model_patch(find_trained_model_asset(d), NEW)
    patched = apply_patch(d, patch)
    assert d == before
    assert patched["properties"]["assets"]["asset3"]["locationInfo"]["uri"] == NEW
    inverse = inverse_model_patch(patch)
    assert inverse == [
        {"op": "test", "path": "/properties/assets/asset3/locationInfo/uri", "value": NEW},
        {"op": "replace", "path": "/properties/assets/asset3/locationInfo/uri", "value": OLD},
    ]
    assert apply_patch(patched, inverse) == before


def test_concurrent_change_fails_the_test_op():
    d = definition()
    patch = build_model_patch(find_trained_model_asset(d), NEW)
    d["properties"]["assets"]["asset3"]["locationInfo"]["uri"] = (
        "https://acct.blob.core.windows.net/models/other.ilearner"
    )
    with pytest.raises(WebServicePatchError, match="changed since it was read.*nothing was updated"):
        apply_patch(d, patch)


def test_patch_on_a_wrong_path_is_refused():
    patch = [{"op": "replace", "path": "/properties/assets/asset8/locationInfo/uri", "value": NEW}]
    with pytest.raises(WebServicePatchError, match="does not fit"):
        apply_patch(definition(), patch)


def test_asset_that_is_not_an_object_is_a_clear_error():
    from airflow_provider_amlretrain.exceptions import WebServicePatchError
    from airflow_provider_amlretrain.promotion.web_service_patch import find_trained_model_asset

    with pytest.raises(WebServicePatchError, match="'asset3' .* not an object"):
        find_trained_model_asset({"properties": {"assets": {"asset3": "oops"}}}, asset_key="asset3")


def test_a_failed_test_op_does_not_quote_the_sas_of_the_asset_uris():
    from airflow_provider_amlretrain.promotion.web_service_patch import apply_patch

    definition = {"a": {"uri": "https://acct.blob.core.windows.net/m/a.ilearner?sv=1&sig=CURRENTSIG"}}
    patch = [{"op": "test", "path": "/a/uri", "value": "https://acct/m/b.ilearner?sig=TESTEDSIG"}]
    with pytest.raises(WebServicePatchError, match="changed since it was read") as caught:
        apply_patch(definition, patch)
    assert "CURRENTSIG" not in str(caught.value) and "TESTEDSIG" not in str(caught.value)
    assert "sig=***" in str(caught.value)

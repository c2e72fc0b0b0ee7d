"""JSON Patch (RFC 6902) edits of a new-style (ARM) web service definition's trained-model asset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_amlretrain.exceptions import WebServicePatchError
from airflow_provider_amlretrain.redaction import redact


@dataclass(frozen=True)
class TrainedModelAsset:
    """
    The ``Resource`` asset holding the ``.ilearner`` a web service scores with.

    :param key: The asset's key in ``properties.assets`` (e.g. ``asset3``).
    :param name: The asset's name (e.g. ``Retrain Sample [trained model]``).
    :param uri: Its current ``locationInfo.uri``.
    """

    key: str
    name: str
    uri: str

    @property
    def uri_path(self) -> str:
        """The JSON Pointer of the asset's location URI."""
        return f"/properties/assets/{_escape(self.key)}/locationInfo/uri"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def find_trained_model_asset(
    definition: dict[str, Any], *, asset_key: str | None = None, asset_name: str | None = None
) -> TrainedModelAsset:
    """
    Find the trained-model asset: by key, by name, or the one ``Resource`` asset with an ``.ilearner``.

    :param definition: The web service definition (``GET`` answer).
    :param asset_key: An explicit key in ``properties.assets``.
    :param asset_name: An explicit asset name.
    """
    assets = (definition.get("properties") or {}).get("assets")
    if not isinstance(assets, dict) or not assets:
        raise WebServicePatchError(
            "The web service definition has no properties.assets: is it a Graph web service?"
        )

    def describe() -> str:
        return ", ".join(
            f"{k} ({v.get('name')!r}, type {v.get('type')!r})"
            for k, v in assets.items()
            if isinstance(v, dict)
        )

    if asset_key is not None:
        if asset_key not in assets:
            raise WebServicePatchError(
                f"The web service has no asset {asset_key!r}; its assets are: {describe()}."
            )
        if not isinstance(assets[asset_key], dict):
            raise WebServicePatchError(f"Asset {asset_key!r} of the web service definition is not an object.")
        candidates = [(asset_key, assets[asset_key])]
    elif asset_name is not None:
        candidates = [
            (k, v) for k, v in assets.items() if isinstance(v, dict) and v.get("name") == asset_name
        ]
        if not candidates:
            raise WebServicePatchError(
                f"The web service has no asset named {asset_name!r}; its assets are: {describe()}."
            )
    else:
        candidates = [
            (k, v)
            for k, v in assets.items()
            if isinstance(v, dict)
            and v.get("type") == "Resource"
            and str((v.get("locationInfo") or {}).get("uri", "")).split("?", 1)[0].endswith(".ilearner")
        ]
        if not candidates:
            raise WebServicePatchError(
                f"The web service has no Resource asset with an .ilearner location; its assets are: {describe()}."
            )
        if len(candidates) > 1:
            raise WebServicePatchError(
                f"The web service has several trained-model assets ({', '.join(k for k, _ in candidates)}): "
                "name the one to replace with asset_key or asset_name."
            )
    key, asset = candidates[0]
    uri = (asset.get("locationInfo") or {}).get("uri")
    if not isinstance(uri, str) or not uri:
        raise WebServicePatchError(f"Asset {key!r} has no locationInfo.uri to replace.")
    return TrainedModelAsset(key=key, name=str(asset.get("name", "")), uri=uri)


def build_model_patch(asset: TrainedModelAsset, new_uri: str) -> list[dict[str, Any]]:
    """
    The JSON Patch that swaps the model: ``test`` the old URI (a concurrent change then fails
    loudly) and ``replace`` it with the new one.

    :param asset: The asset found by :func:`find_trained_model_asset`.
    :param new_uri: The new model's blob URI.
    """
    if not new_uri.split("?", 1)[0].endswith(".ilearner"):
        raise WebServicePatchError(
            f"The new model location {new_uri.split('?', 1)[0]!r} is not an .ilearner blob."
        )
    return [
        {"op": "test", "path": asset.uri_path, "value": asset.uri},
        {"op": "replace", "path": asset.uri_path, "value": new_uri},
    ]


def inverse_model_patch(patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The patch that undoes :func:`build_model_patch`'s patch (for rollback).

    :param patch: A patch built by :func:`build_model_patch`.
    """
    test, replace = patch
    return [
        {"op": "test", "path": replace["path"], "value": replace["value"]},
        {"op": "replace", "path": test["path"], "value": test["value"]},
    ]


def apply_patch(definition: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """
    Apply a JSON Patch to a copy of the definition.

    :param definition: The web service definition.
    :param patch: RFC 6902 operations.
    :raises WebServicePatchError: when a ``test`` fails (someone changed the service meanwhile) or a path is wrong.
    """
    import jsonpatch

    try:
        return jsonpatch.apply_patch(definition, patch, in_place=False)
    except jsonpatch.JsonPatchTestFailed as err:
        raise WebServicePatchError(
            f"The web service changed since it was read ({redact(str(err))}); nothing was updated. Re-run to retry on the current definition."
        ) from err
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
        # jsonpatch quotes the definition, whose asset URIs may carry a SAS.
        raise WebServicePatchError(
            f"The JSON Patch does not fit the web service definition: {redact(str(err))}."
        ) from err

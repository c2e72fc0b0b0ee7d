"""Read a small text blob (an evaluation CSV, a smoke-test sample) through a ``wasb`` connection, with clear errors."""

from __future__ import annotations

from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLError
from airflow_provider_amlretrain.redaction import redact


def split_blob_location(location: str, what: str) -> tuple[str, str]:
    """
    Split ``container/path/to/blob`` into its container and blob name.

    :param location: The location, as users write it.
    :param what: What the blob is, for messages (``"The smoke-test sample"``).
    :raises AzureMLConfigError: if it is not ``container/blob`` with a valid container name.
    """
    container, _, blob = location.strip().strip("/").partition("/")
    if len(container) < 3 or not blob:
        raise AzureMLConfigError(
            f"{what} {location!r} is not a blob location: write it as 'container/path/to/blob' "
            "(container names have at least 3 characters)."
        )
    return container, blob


def read_text_blob(wasb_conn_id: str, location: str, what: str, fix: str) -> str:
    """
    The UTF-8 text of one blob.

    :param wasb_conn_id: The ``wasb`` connection of the storage account.
    :param location: ``container/path/to/blob``.
    :param what: What the blob is, for messages (``"The smoke-test sample"``).
    :param fix: What to do when the blob does not exist, appended to that error.
    :raises AzureMLConfigError: when the blob does not exist or is not UTF-8 text.
    :raises AzureMLError: when storage refuses the read (the message is redacted).
    """
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from airflow_provider_amlretrain.hooks.blob_storage import blob_service_client

    container, blob = split_blob_location(location, what)
    try:
        client = blob_service_client(wasb_conn_id).get_blob_client(container, blob)
        text: str = client.download_blob().content_as_text()
    except ResourceNotFoundError:
        raise AzureMLConfigError(
            f"{what} {container}/{blob} does not exist in the storage account of connection {wasb_conn_id!r}. {fix}"
        ) from None
    except UnicodeDecodeError as err:
        raise AzureMLConfigError(
            f"{what} {container}/{blob} is not UTF-8 text (byte {err.start}); expected a CSV."
        ) from None
    except AzureError as err:
        first_line = (str(getattr(err, "message", None) or err).splitlines() or [type(err).__name__])[0]
        raise AzureMLError(
            f"Could not read {what[0].lower()}{what[1:]} {container}/{blob}: {redact(first_line)}"
        ) from None
    return text.lstrip("\ufeff")

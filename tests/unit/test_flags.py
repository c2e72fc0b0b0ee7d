"""The one yes/no parser: what reads as true, as false, as the default, and what is refused."""

from __future__ import annotations

import pytest

from airflow_provider_amlretrain.exceptions import AzureMLConfigError
from airflow_provider_amlretrain.flags import parse_flag


@pytest.mark.parametrize("value", [True, 1, "true", "True", "TRUE", " true ", "1", "yes", "YES", "\tYes\n"])
def test_true(value):
    assert parse_flag(value, owner="Task 't'", field="force") is True


@pytest.mark.parametrize("value", [False, 0, "false", "False", "FALSE", " false ", "0", "no", "No"])
def test_false(value):
    assert parse_flag(value, owner="Task 't'", field="force") is False


@pytest.mark.parametrize("value", [None, "", "   "])
@pytest.mark.parametrize("default", [True, False])
def test_none_and_empty_mean_the_default(value, default):
    assert parse_flag(value, owner="Task 't'", field="force", default=default) is default


@pytest.mark.parametrize("value", [None, ""])
def test_none_without_a_default_is_refused(value):
    with pytest.raises(AzureMLConfigError, match="force must be true or false"):
        parse_flag(value, owner="Task 't'", field="force")


@pytest.mark.parametrize("value", ["maybe", "ture", "on", "2", 2, -1, 0.5, [], {"a": 1}, "None"])
def test_unclear_values_are_refused_naming_owner_field_and_value(value):
    with pytest.raises(AzureMLConfigError) as caught:
        parse_flag(value, owner="Task 'promote' (Op)", field="skip_promotion", default=False)
    message = str(caught.value)
    assert message.startswith("Task 'promote' (Op): skip_promotion must be true or false")
    assert repr(value) in message

import pytest
from pydantic import ValidationError

from pipeline.settings import Settings, check_environment, load_settings


def test_kafka_bootstrap_is_read(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker:29092")
    assert load_settings().bootstrap == "broker:29092"


def test_unknown_setting_is_named(monkeypatch):
    monkeypatch.setenv("CWN_PARTITONS", "3")
    with pytest.raises(ValueError, match="CWN_PARTITONS"):
        load_settings()


def test_check_environment_accepts_known():
    check_environment({"CWN_PARTITIONS": "3", "PATH": "/bin"})


def test_bad_values_are_rejected():
    with pytest.raises(ValidationError, match="bootstrap"):
        Settings(bootstrap="no-port")
    with pytest.raises(ValidationError, match="partitions"):
        Settings(partitions=0)


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(ValidationError):
        s.partitions = 9


def test_namespace_prefixes_topics():
    assert Settings(namespace="t1").topic("cwn.alerts.raw") == "t1.cwn.alerts.raw"
    assert Settings().topic("cwn.alerts.raw") == "cwn.alerts.raw"

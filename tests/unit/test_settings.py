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


def test_every_client_takes_security_from_the_one_model(tmp_path):
    import faust
    import pytest as _pytest

    from pipeline.kafka import client_config, faust_credentials
    from pipeline.settings import Settings

    plain = Settings(bootstrap="kafka:9092")
    assert client_config(plain) == {"bootstrap.servers": "kafka:9092"}
    assert faust_credentials(plain) is None

    ca = tmp_path / "ca.pem"
    ca.write_text("")
    secure = Settings(bootstrap="kafka:9093", security_protocol="SASL_SSL", sasl_username="cwn-worker",
                      sasl_password="hunter2", ssl_ca_file=ca)  # fmt: skip
    assert client_config(secure) == {
        "bootstrap.servers": "kafka:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "cwn-worker",
        "sasl.password": "hunter2",
        "ssl.ca.location": str(ca),
    }
    assert "hunter2" not in repr(secure), "the password never shows in logs"

    sasl = Settings(
        bootstrap="kafka:9093", security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p"
    )
    credentials = faust_credentials(sasl)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == (
        "u",
        "p",
        "SCRAM-SHA-512",
    )
    assert credentials.ssl_context is None

    with _pytest.raises(ValueError, match="SASL_SSL needs sasl_username and sasl_password"):
        Settings(bootstrap="kafka:9093", security_protocol="SASL_SSL")

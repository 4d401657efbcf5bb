from pathlib import Path

import pytest

from pipeline.broker import JVM_PERFORMANCE_OPTS, LocalBroker


def command(broker: LocalBroker) -> list[str]:
    return broker._java(Path("/jars"), "kafka.Kafka", "server.properties")


def test_the_broker_starts_with_kafkas_own_jvm_options_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KAFKA_HEAP_OPTS", raising=False)
    monkeypatch.delenv("KAFKA_JVM_PERFORMANCE_OPTS", raising=False)
    args = command(LocalBroker(home=Path("/tmp/b"), heap="512m"))
    assert args[1:3] == ["-Xmx512m", "-Xms256m"]
    assert args[3 : 3 + len(JVM_PERFORMANCE_OPTS.split())] == JVM_PERFORMANCE_OPTS.split()
    assert "-XX:MaxGCPauseMillis=20" in args
    assert args[-2:] == ["kafka.Kafka", "server.properties"]


def test_the_environment_replaces_the_heap_and_performance_options_as_for_kafkas_scripts(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("KAFKA_HEAP_OPTS", "-Xmx2g -Xms2g")
    monkeypatch.setenv("KAFKA_JVM_PERFORMANCE_OPTS", "-XX:+UseZGC '-Dcwn.note=two words'")
    args = command(LocalBroker(home=Path("/tmp/b")))
    assert args[1:5] == ["-Xmx2g", "-Xms2g", "-XX:+UseZGC", "-Dcwn.note=two words"]
    assert "-XX:+UseG1GC" not in args and "-Xmx768m" not in args

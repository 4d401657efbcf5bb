"""A real single-node Apache Kafka broker (KRaft) on loopback, for development, demos and tests.

The broker's jars come from Maven Central on first use (resolved by `mvn` into a cache that
later starts reuse), the storage is formatted once, and `up` returns only when the broker
answers a metadata request. `down` stops it with SIGTERM (a clean, controlled shutdown) and
falls back to SIGKILL only after a timeout.
"""

from __future__ import annotations

import base64
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipeline.kafka import wait_for_cluster
from pipeline.security.pki import BROKER_CN, Pki, make_pki
from pipeline.settings import Settings

#: The secured broker's administrator: a super user, for provisioning and the pipeline's own tools.
ADMIN_USER = "cwn-admin"

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"
_READY_LINE = "Kafka Server started"
#: The JVM options Kafka's own start scripts use (`kafka-run-class.sh`), unless
#: `KAFKA_JVM_PERFORMANCE_OPTS` says otherwise, as it does for those scripts. With G1's own
#: pause goal (200 ms) its young collections stopped the broker for 16-17 ms on average here,
#: with Kafka's (20 ms) for 12-13 ms, more often.
JVM_PERFORMANCE_OPTS = (
    "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 "
    "-XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"
)

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>net.cwn</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J = """<Configuration status="WARN">
  <Appenders><Console name="console" target="SYSTEM_OUT">
    <PatternLayout pattern="[%d] %p %m (%c)%n"/></Console></Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/><Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Root level="WARN"><AppenderRef ref="console"/></Root>
  </Loggers>
</Configuration>
"""


class BrokerError(RuntimeError):
    """The local broker could not be prepared, started or stopped; the message says what to do."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cwn"


def resolve_jars(version: str = KAFKA_VERSION) -> Path:
    """Return a folder holding the broker's runtime jars, downloading them once with Maven."""
    target = cache_dir() / f"kafka-{version}" / "jars"
    marker = target / ".complete"
    if marker.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven")
    work = target.parent
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={target}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BrokerError(f"resolving Kafka {version} jars failed:\n{result.stdout}{result.stderr}")
    marker.touch()
    return target


@dataclass(frozen=True)
class LocalBroker:
    """One broker's files under `home`, listening on `port` (and `port + 1` for its controller).

    `secure` makes it the broker of a secured cluster: clients connect with SASL (SCRAM-SHA-512)
    over TLS on `port`; the controller (`port + 1`) and the inter-broker listener (`port + 2`)
    take only mutually authenticated TLS with the broker's own certificate; the StandardAuthorizer
    refuses everything no ACL grants, except to the super users (the broker and `cwn-admin`).
    The CA, the broker's certificate and the administrator's password are generated once under
    `home`.
    """

    home: Path
    port: int = 9092
    heap: str = "768m"
    secure: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, secure: bool = False) -> LocalBroker:
        host, _, port = settings.bootstrap.split(",")[0].rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise BrokerError(f"the local broker runs on loopback; {settings.bootstrap} is not local")
        home = settings.state_dir.resolve() / ("broker-secure" if secure else "broker")
        return cls(home=home, port=int(port), secure=secure)

    @property
    def pki(self) -> Pki:
        return Pki(self.home / "tls")

    @property
    def admin_password(self) -> str:
        """The administrator's password, made once (mode 0600)."""
        path = self.home / "admin.password"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(24))
            os.chmod(path, 0o600)
        return path.read_text().strip()

    def client_settings(self, **overrides: object) -> Settings:
        """Settings for a client of this broker; on a secure broker, as its administrator."""
        if not self.secure:
            return Settings(bootstrap=self.bootstrap, **overrides)  # type: ignore[arg-type]
        return Settings(
            bootstrap=self.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=ADMIN_USER,
            sasl_password=self.admin_password,  # type: ignore[arg-type]
            ssl_ca_file=self.pki.ca_file,
            **overrides,  # type: ignore[arg-type]
        )

    def client_env(self) -> dict[str, str]:
        """The `CWN_*` variables that point a `cwn` process at this broker."""
        settings = self.client_settings()
        env = {"KAFKA_BOOTSTRAP": self.bootstrap, "CWN_SECURITY_PROTOCOL": settings.security_protocol}
        if self.secure:
            env |= {
                "CWN_SASL_MECHANISM": settings.sasl_mechanism,
                "CWN_SASL_USERNAME": settings.sasl_username,
                "CWN_SASL_PASSWORD": settings.sasl_password.get_secret_value(),
                "CWN_SSL_CA_FILE": str(settings.ssl_ca_file),
            }
        return env

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    def pid(self) -> int | None:
        """The broker's pid when it is running, else None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"kafka.Kafka" not in cmdline.read_bytes():
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def _write_config(self) -> Path:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        controller = self.port + 1
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.segment.bytes": str(64 * 1024 * 1024),
            # Member topics are many and small: keep their index files small too.
            "log.index.size.max.bytes": str(1024 * 1024),
        }
        if self.secure:
            props |= self._secure_props(controller)
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j2.xml").write_text(_LOG4J)
        return path

    def _secure_props(self, controller: int) -> dict[str, str]:
        pki = make_pki(self.home / "tls")
        internal = self.port + 2
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller},"
            f"INTERNAL://127.0.0.1:{internal}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller},"
            f"INTERNAL://127.0.0.1:{internal}",
            "listener.security.protocol.map": "CONTROLLER:SSL,INTERNAL:SSL,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "INTERNAL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki.ca_file),
            "listener.name.internal.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:CN={BROKER_CN};User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _java(self, jars: Path, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java 17+ is needed for the local broker: apt-get install default-jre-headless")
        heap = os.environ.get("KAFKA_HEAP_OPTS") or f"-Xmx{self.heap} -Xms256m"
        performance = os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS") or JVM_PERFORMANCE_OPTS
        return [
            java, *shlex.split(heap), *shlex.split(performance),
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.home}", "-cp", f"{jars}/*", *args,
        ]  # fmt: skip

    def up(self, timeout: float = 120.0) -> int:
        """Start the broker (formatting its storage the first time) and wait until it serves."""
        running = self.pid()
        if running:
            return running
        jars = resolve_jars()
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            scram = ["--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={self.admin_password}]"]
            fmt = subprocess.run(
                self._java(jars, "kafka.tools.StorageTool", "format", "--standalone",
                           # One argument: an id starting with "-" (1 in 64) is otherwise
                           # read as an option.
                           f"--cluster-id={cluster_id}", "-c", str(config), "--ignore-formatted",
                           *(scram if self.secure else [])),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise BrokerError(f"formatting broker storage failed:\n{fmt.stdout}{fmt.stderr}")
        log = self.log_file.open("ab")
        process = subprocess.Popen(
            self._java(jars, "kafka.Kafka", str(config)),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.pid_file.write_text(str(process.pid))
        start = self.log_file.stat().st_size if self.log_file.exists() else 0
        deadline = time.monotonic() + timeout
        while _READY_LINE not in self._log_since(start):
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(f"broker exited with {process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.down()
                raise BrokerError(f"broker not ready after {timeout:.0f}s; see {self.log_file}")
            time.sleep(0.25)
        wait_for_cluster(self.client_settings(), timeout=max(5.0, deadline - time.monotonic()))
        return process.pid

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def down(self, timeout: float = 60.0) -> bool:
        """Stop the broker cleanly; returns False when none was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "bootstrap": self.bootstrap,
            "home": str(self.home),
            "secure": self.secure,
        }


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))

"""The `cwn` command: parses arguments and calls the rest."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console

from pipeline import __version__
from pipeline.settings import Settings, load_settings

app = typer.Typer(
    help="CWN alert pipeline.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
kafka_app = typer.Typer(help="The local single-node Kafka broker.", no_args_is_help=True)
topics_app = typer.Typer(help="Pipeline topics.", no_args_is_help=True)
members_app = typer.Typer(help="The member directory.", no_args_is_help=True)
route_app = typer.Typer(help="Routing: who receives an alert and why.", no_args_is_help=True)
enrich_app = typer.Typer(
    help="Enrichment rules: warning lists, watch list, severity rules.", no_args_is_help=True
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(members_app, name="members")
app.add_typer(route_app, name="route")
app.add_typer(enrich_app, name="enrich")

err = Console(stderr=True)


def settings() -> Settings:
    try:
        return load_settings()
    except (ValidationError, ValueError) as exc:
        err.print(f"[red]Invalid settings:[/red] {exc}\nFix the CWN_* environment variables and retry.")
        raise typer.Exit(2) from exc


def print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


SecureOption = Annotated[
    bool,
    typer.Option("--secure", help="The secured broker: SASL/SCRAM over TLS, ACLs, a throwaway CA."),
]


@kafka_app.command("up")
def kafka_up(secure: SecureOption = False) -> None:
    """Start the local broker (downloads Apache Kafka jars from Maven Central on first use).

    With --secure, clients must authenticate (SCRAM-SHA-512 over TLS) and may do only what ACLs
    grant; the variables that make `cwn` the broker's administrator are printed on stdout
    (`eval "$(cwn kafka up --secure)"`)."""
    from pipeline.broker import BrokerError, LocalBroker

    broker = LocalBroker.from_settings(settings(), secure=secure)
    started = time.monotonic()
    try:
        pid = broker.up()
    except BrokerError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    kind = "secured Kafka (SASL_SSL)" if secure else "Kafka"
    err.print(f"{kind} is serving on {broker.bootstrap} (pid {pid}, {time.monotonic() - started:.1f}s).")
    if secure:
        for name, value in broker.client_env().items():
            print(f"export {name}={value}")


@kafka_app.command("down")
def kafka_down(secure: SecureOption = False) -> None:
    """Stop the local broker cleanly."""
    from pipeline.broker import LocalBroker

    stopped = LocalBroker.from_settings(settings(), secure=secure).down()
    err.print("Kafka stopped." if stopped else "Kafka was not running.")


@kafka_app.command("status")
def kafka_status(secure: SecureOption = False) -> None:
    """Print whether the local broker runs, as JSON; exit 1 when it does not."""
    from pipeline.broker import LocalBroker

    status = LocalBroker.from_settings(settings(), secure=secure).status()
    print_json(status)
    raise typer.Exit(0 if status["running"] else 1)


@topics_app.command("ensure")
def topics_ensure() -> None:
    """Create every pipeline topic that does not exist yet (idempotent)."""
    from pipeline.kafka import ensure_topics
    from pipeline.topics import pipeline_topics

    s = settings()
    specs = pipeline_topics(s)
    created = ensure_topics(s, specs)
    err.print(f"{len(specs)} pipeline topics present; created {len(created)}: {', '.join(created) or '-'}")


def _load_directory_file(path: Path) -> object:
    from pipeline.directory import DirectoryError, load_directory

    try:
        return load_directory(path.read_text(), str(path))
    except FileNotFoundError as exc:
        err.print(f"[red]{path}: no such file[/red]")
        raise typer.Exit(2) from exc
    except DirectoryError as exc:
        for problem in exc.problems:
            err.print(f"[red]{problem}[/red]")
        raise typer.Exit(2) from exc


@members_app.command("import")
def members_import(
    file: Annotated[Path, typer.Argument(help="Directory YAML (a 'members:' list).")],
    prune: Annotated[bool, typer.Option(help="Remove members that the file does not list.")] = False,
) -> None:
    """Write members and subscriptions to the control topics; running routers apply them live."""
    from pipeline.control import publish_members, read_directory

    directory = _load_directory_file(file)
    s = settings()
    current = read_directory(s)
    summary = publish_members(s, directory, current=current, prune=prune)  # type: ignore[arg-type]
    if s.security_protocol.startswith("SASL"):
        # On a secured broker every member gets its credentials and exactly its ACLs; members
        # pruned from the directory lose theirs at once.
        provisioner = _provisioner(s)
        kept = {m.id for m in directory}  # type: ignore[attr-defined]
        summary["credentials"] = provisioner.provision_members(s, sorted(kept))
        revoked = [m.id for m in current if m.id not in kept] if prune else []
        for member_id in revoked:
            provisioner.revoke_member(member_id)
        summary["credentials_revoked"] = len(revoked)
    print_json(summary)


@members_app.command("remove")
def members_remove(
    member_id: str,
    delete_topic: Annotated[bool, typer.Option(help="Delete its topic too (the default keeps it).")] = False,
) -> None:
    """Remove one member: routers stop delivering to it at once; on a secured broker its
    credentials and ACLs are revoked at once (no restart); its topic is kept unless asked."""
    from pipeline.control import read_directory, remove_member
    from pipeline.kafka import delete_topics
    from pipeline.topics import member_topic

    s = settings()
    member = read_directory(s).get(member_id)
    if member is None:
        err.print(f"[red]No member {member_id!r} in the directory.[/red] See `cwn members list`.")
        raise typer.Exit(1)
    remove_member(s, member)
    if s.security_protocol.startswith("SASL"):
        _provisioner(s).revoke_member(member_id)
        err.print(f"Credentials and ACLs of {member_id} revoked.")
    if delete_topic:
        delete_topics(s, [member_topic(s, member_id)])
    err.print(f"Member {member_id} removed.")


def _provisioner(s: Settings) -> Any:
    from pipeline.security.provision import CredentialStore, Provisioner

    return Provisioner(s, CredentialStore(s.state_dir / "credentials"))


@members_app.command("credentials")
def members_credentials(
    member_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = True,
    rotate: Annotated[bool, typer.Option(help="Replace the password; the old one stops working.")] = False,
) -> None:
    """Create (once) or rotate a member's SCRAM credentials and ACLs on the secured broker, and
    print the settings its systems connect with: read its own topic, nothing else."""
    from pipeline.control import read_directory
    from pipeline.security.acl import member_group_prefix, member_principal
    from pipeline.topics import member_topic

    s = settings()
    if not s.security_protocol.startswith("SASL"):
        err.print("[red]Credentials need a secured broker:[/red] set CWN_SECURITY_PROTOCOL=SASL_SSL "
                  "and the administrator's CWN_SASL_* (see `cwn kafka up --secure`).")  # fmt: skip
        raise typer.Exit(2)
    if read_directory(s).get(member_id) is None:
        err.print(f"[red]No member {member_id!r} in the directory.[/red] See `cwn members list`.")
        raise typer.Exit(1)
    password = _provisioner(s).provision_member(s, member_id, rotate=rotate)
    result = {
        "bootstrap": s.bootstrap,
        "security_protocol": s.security_protocol,
        "sasl_mechanism": "SCRAM-SHA-512",
        "username": member_principal(member_id),
        "password": password,
        "ca_file": str(s.ssl_ca_file) if s.ssl_ca_file else None,
        "topic": member_topic(s, member_id),
        "group_prefix": member_group_prefix(s, member_id),
    }
    print_json(result) if as_json else err.print(result)


@members_app.command("backfill")
def members_backfill(
    member_id: str,
    days: Annotated[float, typer.Option(help="How far back to go in the retained enriched stream.")] = 7.0,
    dry_run: Annotated[bool, typer.Option(help="Count what would be sent; send nothing.")] = False,
) -> None:
    """Send a (new) member the alerts of the last days that its subscriptions and today's TLP
    rules give it; prints a JSON summary."""
    from pipeline.backfill import backfill
    from pipeline.control import read_directory
    from pipeline.routing import RoutingIndex

    s = settings()
    directory = read_directory(s)
    member = directory.get(member_id)
    if member is None:
        err.print(
            f"[red]No member {member_id!r} in the directory.[/red] Import it first (cwn members import)."
        )
        raise typer.Exit(1)
    print_json(backfill(s, member, RoutingIndex(directory), days, dry_run))


@members_app.command("generate")
def members_generate(
    count: Annotated[int, typer.Option(help="How many members.")] = 1152,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same directory.")] = 2026,
) -> None:
    """Print a realistic synthetic directory as YAML on stdout."""
    from pipeline.directory import dump_directory, generate_members

    sys.stdout.write(dump_directory(generate_members(count, seed)))


@members_app.command("list")
def members_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """Print the directory in force, as read from the control topics."""
    from pipeline.control import read_directory

    directory = read_directory(settings())
    if as_json:
        print_json([m.model_dump(mode="json") for m in directory])
        return
    for member in directory:
        sectors = ",".join(member.sectors)
        print(f"{member.id}\t{sectors}\t{len(member.subscriptions)} subscriptions\t{member.name}")


@route_app.command("explain")
def route_explain(
    file: Annotated[
        str, typer.Argument(help="An alert as JSON (one object, or JSON lines), or - for stdin.")
    ],
    member: Annotated[
        list[str] | None, typer.Option("--member", help="Give this member's decision in full (repeatable).")
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Give every member's decision in full.")] = False,
    directory_file: Annotated[
        Path | None, typer.Option("--directory", help="A directory YAML instead of the directory in force.")
    ] = None,
    rules_file: Annotated[
        Path | None, typer.Option("--rules", help="Enrichment rules YAML instead of the rules in force.")
    ] = None,
) -> None:
    """Who receives an alert, through which rule, and why every other member does not (TLP,
    subscription, constituency): one JSON object per alert on stdout."""
    from datetime import UTC, datetime

    from pipeline.alert import Rejected, build_alert, parse_time
    from pipeline.control import read_control
    from pipeline.routing import RoutingIndex
    from pipeline.routing.report import explain_report
    from pipeline.serde import SerdeError, from_json

    data = sys.stdin.buffer.read() if file == "-" else _read_file(Path(file))
    if directory_file:
        directory, rules = _load_directory_file(directory_file), _load_rules_file(rules_file)
    else:
        view = read_control(settings())
        directory, rules = view.index.directory, _load_rules_file(rules_file) if rules_file else view.rules
    index = RoutingIndex(directory)  # type: ignore[arg-type]
    lines = [line for line in data.splitlines() if line.strip()]
    documents = [data] if data.lstrip()[:1] == b"{" and len(lines) > 1 and not _all_json(lines) else lines
    for number, document in enumerate(documents, start=1):
        try:
            data = from_json(document)
            # Explaining an alert of any age: its observation time is not what is in question.
            observed = data.get("time_observation") if isinstance(data, dict) else None
            alert = build_alert(
                data, now=parse_time(observed, "time_observation") if observed else datetime.now(UTC)
            )
        except (Rejected, SerdeError, TypeError) as exc:
            err.print(f"[red]alert {number}: {exc}[/red] (an alert as JSON, shaped like schemas/alert.avsc)")
            raise typer.Exit(2) from exc
        print_json(explain_report(alert, index, member, everyone, rules))


def _load_rules_file(path: Path | None) -> Any:
    from pipeline.rules import EnrichmentRules, RulesError, load_rules

    if path is None:
        return EnrichmentRules()
    try:
        return load_rules(_read_file(path).decode(), str(path))
    except RulesError as exc:
        for problem in exc.problems:
            err.print(f"[red]{problem}[/red]")
        raise typer.Exit(2) from exc


@enrich_app.command("check")
def enrich_check(
    file: Annotated[Path, typer.Argument(help="An enrichment.yaml to validate offline.")],
) -> None:
    """Validate enrichment rules without importing them; exit 2 listing every problem."""
    r = _load_rules_file(file).rules
    print_json(
        {
            "warninglists": len(r.warninglists),
            "watchlist": len(r.watchlist),
            "severity_rules": len(r.severity_rules),
        }
    )


@enrich_app.command("import")
def enrich_import(file: Annotated[Path, typer.Argument(help="The enrichment.yaml to put in force.")]) -> None:
    """Put warning lists, the watch list and severity rules in force on every worker, live."""
    from pipeline.control import publish_rules

    print_json(publish_rules(settings(), _load_rules_file(file)))


@enrich_app.command("update")
def enrich_update(
    file: Annotated[
        Path, typer.Argument(help="iptoasn.com's ip2asn-combined.tsv (or a file in its format).")
    ],
) -> None:
    """Load an IP-to-ASN dataset: every worker fills in ASN, AS name and country of addresses, live."""
    from pipeline.control import publish_asn
    from pipeline.rejected import Rejected

    try:
        summary = publish_asn(settings(), _read_file(file).decode())
    except (Rejected, UnicodeDecodeError) as exc:
        err.print(f"[red]{file}: {exc}[/red]")
        raise typer.Exit(2) from exc
    print_json(summary)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        err.print(f"[red]{path}: {exc.strerror or exc}[/red]")
        raise typer.Exit(2) from exc


def _all_json(lines: list[bytes]) -> bool:
    from pipeline.serde import SerdeError, from_json

    try:
        return all(isinstance(from_json(line), dict) for line in lines)
    except SerdeError:
        return False


@app.command()
def worker() -> None:
    """Run one pipeline worker (all its agents) until SIGTERM or Ctrl-C."""
    from pipeline.worker import run_worker

    run_worker(settings())


@app.command()
def connect(
    kind: Annotated[str | None, typer.Argument(help="The connector to run.")] = None,
    list_kinds: Annotated[bool, typer.Option("--list", help="Name the connectors and exit.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Check every target of this kind in the directory; exit.")
    ] = False,
) -> None:
    """Deliver member topics through one connector (webhook, syslog, email, taxii, file) until
    SIGTERM; start more with the same KIND to share the members between them."""
    from connectors.kinds import KINDS
    from connectors.settings import load_connect_settings

    if list_kinds or kind is None:
        for name, kind_class in KINDS.items():
            print(
                f"{name}\t{(kind_class.__doc__ or '').strip().splitlines()[0] if kind_class.__doc__ else ''}"
            )
        raise typer.Exit(0 if list_kinds else 2)
    if kind not in KINDS:
        err.print(f"[red]Unknown connector {kind!r}[/red]; `cwn connect --list` names them.")
        raise typer.Exit(2)
    try:
        connect_settings = load_connect_settings()
    except (ValidationError, ValueError) as exc:
        err.print(f"[red]Invalid connector settings:[/red] {exc}\nFix the CWN_CONNECT_* variables.")
        raise typer.Exit(2) from exc
    if check:
        from connectors.main import check_targets
        from pipeline.control import read_directory

        problems = check_targets(kind, connect_settings, read_directory(settings()))
        for problem in problems:
            err.print(f"[red]{problem}[/red]")
        raise typer.Exit(1 if problems else 0)
    from connectors.main import run_connector

    run_connector(kind, settings(), connect_settings)


@app.command()
def demo(
    alerts: Annotated[int, typer.Option(help="Sample records to replay.")] = 5000,
    members: Annotated[int, typer.Option(help="Synthetic members in the directory.")] = 1152,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Run to completion; print one JSON object.")
    ] = False,
    follow: Annotated[bool, typer.Option(help="Keep feeding and showing counts until Ctrl-C.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the demo's topics and worker state.")] = False,
) -> None:
    """Run the whole pipeline on the local broker with the built-in sample feed."""
    from pipeline.demo.main import DemoOptions, run_demo

    options = DemoOptions(
        alerts=alerts, members=members, workers=workers, follow=follow and not as_json, keep=keep
    )
    started = time.monotonic()
    counts = run_demo(settings(), options, err, quiet=as_json)
    result = counts.as_dict() | {"members": members, "seconds": round(time.monotonic() - started, 1)}
    if as_json:
        print_json(result)
    else:
        err.print(result)
    raise typer.Exit(0 if counts.lost == 0 else 1)


@app.command()
def bench(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    suite: Annotated[
        str,
        typer.Option(
            help="pipeline: the pipeline on Kafka; routing: routing cost against member count; "
            "produce: what the fan-out's writes cost the client and the broker; stages: the CPU "
            "per alert of the pipeline's own code, in process."
        ),
    ] = "pipeline",
    alerts: Annotated[int, typer.Option(help="Corpus size (alerts in the raw topic).")] = 50_000,
    members: Annotated[int, typer.Option(help="Synthetic members in the directory.")] = 1152,
    latency_seconds: Annotated[float, typer.Option(help="Seconds of open-loop load per level.")] = 10.0,
    loads: Annotated[
        str, typer.Option(help="Latency levels, as percentages of the measured throughput.")
    ] = "25,50,80",
    rates: Annotated[
        str,
        typer.Option(
            help="More latency levels at fixed alerts/s (e.g. 60,90), after the shares: the same "
            "load in every run, for comparing runs whose measured throughput differs."
        ),
    ] = "",
    state_keys: Annotated[int, typer.Option(help="Keys written to size the dedup state.")] = 1_000_000,
    workers: Annotated[int, typer.Option(help="Pipeline worker processes in one group.")] = 1,
    recovery_keys: Annotated[
        int, typer.Option(help="Dedup keys the killed worker must replay in the recovery test.")
    ] = 1_000_000,
    rebalance_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds of load at 50% while a worker joins and another leaves; 0 leaves it out.",
        ),
    ] = 30.0,
) -> None:
    """Measure the pipeline against raw Kafka pass-through on the local broker (or KAFKA_BOOTSTRAP),
    with `--suite routing` the routing cost per alert for 100, 1,152 and 10,000 members, or with
    `--suite produce` the CPU per record of the fan-out's writes, for each Kafka client and for
    the broker, against the same writes to one topic (`--members` topics, `--latency-seconds`
    per writer), or with `--suite stages` the CPU per alert of each stage's own code, without
    Kafka (`--alerts`, `--members`)."""
    from pipeline.bench.run import BenchOptions, run_bench

    if suite not in ("pipeline", "routing", "produce", "stages"):
        err.print(f"[red]Unknown suite {suite!r}[/red]: pipeline, routing, produce or stages.")
        raise typer.Exit(2)
    if suite in ("routing", "produce", "stages"):
        if suite == "routing":
            from pipeline.bench.routing import run_routing_suite

            result = run_routing_suite(say=lambda text: err.print(text))
        elif suite == "stages":
            from pipeline.bench.stages import run_stages_suite

            result = run_stages_suite(members, alerts, say=lambda text: err.print(text))
        else:
            from pipeline.bench.produce import ProduceLoad, run_produce_suite

            load = ProduceLoad(topics=members, seconds=latency_seconds)
            result = run_produce_suite(settings(), load, lambda text: err.print(text))
        print_json(result) if as_json else err.print(result)
        return

    try:
        shares = tuple(float(p) / 100 for p in loads.split(","))
    except ValueError:
        shares = ()
    if not shares or not all(0 < share <= 1 for share in shares):
        err.print(f"[red]--loads {loads!r}[/red]: percentages between 0 and 100, separated by commas.")
        raise typer.Exit(2)
    try:
        fixed = tuple(float(r) for r in rates.split(",")) if rates else ()
    except ValueError:
        fixed = (0.0,)
    if not all(0 < rate <= 100_000 for rate in fixed):
        err.print(f"[red]--rates {rates!r}[/red]: alerts per second above 0, separated by commas.")
        raise typer.Exit(2)
    options = BenchOptions(
        alerts=alerts,
        members=members,
        latency_seconds=latency_seconds,
        loads=shares,
        rates=fixed,
        state_keys=state_keys,
        recovery_keys=recovery_keys,
        rebalance_seconds=rebalance_seconds,
        workers=workers,
    )
    result = run_bench(settings(), options, lambda text: err.print(text))
    if as_json:
        print_json(result)
    else:
        err.print(result)


def _register_partner_commands() -> None:
    from pipeline.partner.cli import register

    register(app)


_register_partner_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

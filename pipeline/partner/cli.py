"""`cwn feeds`, `cwn parse` and `cwn produce`: the partner-facing commands.

Exit codes are part of the contract, because partners script these: `cwn parse` exits 0 when
every record was accepted, 3 when some were rejected, 2 on a usage error; `cwn produce` exits
0 when every record was acknowledged by the broker, 1 when some were not, 2 on a usage error.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from pipeline.feeds import FORMATS, FeedRegistry, FeedsError, FeedSpec, load_feeds
from pipeline.partner.records import FileRecord, UsageError, sniff_file_format, split_records

feeds_app = typer.Typer(help="The feed registry (feeds.yaml).", no_args_is_help=True)

FeedsFile = Annotated[Path, typer.Option("--feeds", help="The feed registry file.", envvar="CWN_FEEDS_FILE")]
Source = Annotated[str, typer.Argument(help="A file, or - for standard input.")]


def _usage(message: str) -> typer.Exit:
    from pipeline.cli import err

    err.print(f"[red]{message}[/red]")
    return typer.Exit(2)


def _registry(path: Path) -> FeedRegistry:
    try:
        return load_feeds(path.read_text(), str(path))
    except FileNotFoundError:
        raise _usage(f"{path}: no such file. Pass the feed registry with --feeds FILE.") from None
    except FeedsError as exc:
        raise _usage("\n".join(exc.problems)) from None


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise _usage(f"{source}: {exc.strerror or exc}") from None


def _spec(feed: str | None, fmt: str | None, feeds_file: Path, data: bytes) -> FeedSpec:
    """The feed a file is checked or sent as: a declared feed, or a format on its own."""
    if feed:
        spec = _registry(feeds_file).get(feed)
        if spec is None:
            raise _usage(
                f"feed {feed!r} is not declared in {feeds_file}; see `cwn feeds list --feeds {feeds_file}`."
            )
        if fmt and fmt != spec.format:
            raise _usage(f"feed {feed} is declared as {spec.format}, not {fmt}.")
        return spec
    fmt = fmt or sniff_file_format(data)
    if fmt is None:
        raise _usage("cannot tell the file's format; name it with --format or the feed with --feed.")
    if fmt not in FORMATS:
        raise _usage(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}.")
    if fmt == "csv":
        raise _usage("csv needs a feed for its column mapping: pass --feed ID (declared in --feeds FILE).")
    return FeedSpec(id=f"local/{fmt}", format=fmt, producers=("local",))  # type: ignore[arg-type]


@feeds_app.command("check")
def feeds_check(file: Annotated[Path, typer.Argument(help="A feeds.yaml to validate offline.")]) -> None:
    """Validate a feed registry without importing it; exit 2 listing every problem."""
    from pipeline.cli import print_json

    registry = _registry(file)
    print_json({"feeds": len(registry), "formats": sorted({f.format for f in registry})})


@feeds_app.command("import")
def feeds_import(
    file: Annotated[Path, typer.Argument(help="The feeds.yaml to put in force.")],
    prune: Annotated[bool, typer.Option(help="Remove feeds that the file does not declare.")] = False,
) -> None:
    """Write the feed declarations to the control topic; running normalisers apply them live."""
    from pipeline.cli import print_json, settings
    from pipeline.control import publish_feeds, read_feeds

    registry = _registry(file)
    s = settings()
    summary = publish_feeds(s, registry, current=read_feeds(s) if prune else None)
    if s.security_protocol.startswith("SASL"):
        # On a secured broker each producer gets credentials and may write its own topic only.
        from pipeline.cli import _provisioner
        from pipeline.topics import partner_raw_topic

        producers = sorted({p for f in registry for p in f.producers if partner_raw_topic(s, p)})
        summary["producer_credentials"] = _provisioner(s).provision_producers(s, producers)
    print_json(summary)


@feeds_app.command("credentials")
def feeds_credentials(
    producer: Annotated[str, typer.Argument(help="A producer identity declared in the feeds.")],
) -> None:
    """Print, as JSON, the settings a producer's systems write with on the secured broker:
    its own credentials and its own raw topic (run `cwn feeds import` first)."""
    from pipeline.cli import print_json, settings
    from pipeline.security.provision import CredentialStore
    from pipeline.topics import partner_raw_topic

    s = settings()
    password = CredentialStore(s.state_dir / "credentials").get(producer)
    if password is None:
        raise _usage(
            f"no credentials for producer {producer!r}; declare it in feeds.yaml and run `cwn feeds import`."
        )
    print_json(
        {
            "bootstrap": s.bootstrap,
            "security_protocol": s.security_protocol,
            "sasl_mechanism": "SCRAM-SHA-512",
            "username": producer,
            "password": password,
            "ca_file": str(s.ssl_ca_file) if s.ssl_ca_file else None,
            "topic": partner_raw_topic(s, producer),
        }
    )


@feeds_app.command("list")
def feeds_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """Print the feeds in force, as read from the control topic."""
    from pipeline.cli import print_json, settings
    from pipeline.control import read_feeds

    registry = read_feeds(settings())
    if as_json:
        print_json([f.model_dump(mode="json") for f in registry])
        return
    for spec in registry:
        print(f"{spec.id}\t{spec.format}\t{spec.default_tlp}\t{','.join(spec.producers)}")


def parse_command(
    source: Source,
    feed: Annotated[
        str | None, typer.Option(help="Check as this declared feed (its format and mapping).")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help=f"Check as this format: {', '.join(FORMATS)}.")
    ] = None,
    feeds_file: FeedsFile = Path("feeds.yaml"),
    max_bytes: Annotated[int, typer.Option(help="Largest record accepted.")] = 512 * 1024,
    now: Annotated[
        datetime | None,
        typer.Option(
            help="Check as of this time (RFC 3339), for files recorded earlier.",
            formats=["%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
) -> None:
    """Normalise a file offline: alerts as JSON lines on stdout, one JSON line per rejection on
    stderr. Exit 0 when every record was accepted, 3 when some were rejected, 2 on usage errors."""
    from pipeline.normalise import Limits
    from pipeline.partner.check import check_records
    from pipeline.serde import to_json

    data = _read(source)
    spec = _spec(feed, fmt, feeds_file, data)
    out, errors = sys.stdout.buffer, sys.stderr.buffer
    try:
        records = list(split_records(data, spec.format))
    except UsageError as exc:
        raise _usage(str(exc)) from None
    summary = check_records(
        records,
        spec,
        Limits(max_bytes),
        _as_utc(now) if now else datetime.now(UTC),
        on_alert=lambda alert: out.write(to_json(alert) + b"\n"),
        on_rejection=lambda rejection: errors.write(_json_line(rejection)),
    )
    out.flush()
    errors.flush()
    raise typer.Exit(0 if summary.clean else 3)


def produce_command(
    source: Source,
    feed: Annotated[str, typer.Option(help="The feed id the records are sent as (provider/name).")],
    producer: Annotated[
        str, typer.Option(help="Your producer identity, as the feed declares it.", envvar="CWN_PRODUCER")
    ],
    fmt: Annotated[
        str | None, typer.Option("--format", help="How to split the file into records; guessed when omitted.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on standard error.")] = True,
    own_topic: Annotated[
        bool | None,
        typer.Option(
            "--own-topic/--shared-topic",
            help="Write your own raw topic (cwn.alerts.raw.<producer>), the only one a secured "
            "broker lets you write; the default on SASL connections.",
        ),
    ] = None,
) -> None:
    """Send a file (or standard input) to the network as one feed's raw records; print a JSON
    summary. Exit 0 when every record was acknowledged, 1 when some were not, 2 on usage errors."""
    from pipeline.cli import print_json, settings
    from pipeline.kafka import client_config
    from pipeline.partner.sdk import FeedProducer
    from pipeline.topics import RAW, partner_raw_topic

    data = _read(source)
    fmt = fmt or sniff_file_format(data)
    if fmt is None or fmt not in FORMATS:
        raise _usage(
            "cannot tell how to split the file into records; pass --format (one of: "
            + ", ".join(FORMATS)
            + ")."
        )
    s = settings()
    try:
        records = list(split_records(data, fmt))
    except UsageError as exc:
        raise _usage(str(exc)) from None
    if own_topic is None:
        own_topic = s.security_protocol.startswith("SASL")
    topic = partner_raw_topic(s, producer) if own_topic else s.topic(RAW)
    if topic is None:
        raise _usage(f"producer {producer!r} cannot have a topic of its own; use --shared-topic.")
    with FeedProducer(s.bootstrap, feed, producer, fmt, topic=topic, config=client_config(s)) as sender:
        _send_all(sender, records, progress and sys.stderr.isatty())
    summary = sender.summary()
    print_json(summary.as_dict())
    raise typer.Exit(0 if summary.failed == 0 and summary.pending == 0 else 1)


def _send_all(sender: object, records: list[FileRecord], progress: bool) -> None:
    from rich.progress import Progress

    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("sending", total=len(records))
        for record in records:
            sender.send(record.value)  # type: ignore[attr-defined]
            bar.advance(task)


def _as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json_line(value: object) -> bytes:
    import orjson

    return orjson.dumps(value) + b"\n"


def register(app: typer.Typer) -> None:
    app.add_typer(feeds_app, name="feeds")
    app.command("parse")(parse_command)
    app.command("produce")(produce_command)

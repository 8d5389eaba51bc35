"""Read, show and redrive the platform's dead letters.

    python -m kokeilu.deadletters list    [filters] [--limit N] [--json]
    python -m kokeilu.deadletters show    ID [ID ...] [--json]
    python -m kokeilu.deadletters redrive (ID ... | filters | --all) [--dry-run] [--json]

filters: --service NAME, --reason REASON, --topic TOPIC (each repeatable), --since TIME,
--until TIME (ISO 8601, UTC when no zone is given, or a time ago: 30m, 2h, 7d; the dead
letter's own time). ID: <partition>:<offset> of the dead letter on kokeilu.deadletter.v1, as
`list` shows it.

`redrive` sends each dead letter's value, with its key and original headers and the header
kokeilu.redrive.of, back to its source topic, and records it on kokeilu.deadletter-redrives.v1
so that it is not redriven again. Dead letters without their whole value are skipped (the
original is at the source partition and offset shown). The consumers apply a redriven event
once: one they applied already is dropped by their inbox.

It connects as kokeilu.config says (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL,
KAFKA_SASL_*, KAFKA_SSL_CAFILE; in a secured cluster, as `admin`) and reads the topics of
KOKEILU_TOPIC_PREFIX. Exit status: 0 done, 1 a record could not be redriven (or its redrive not
recorded), 2 a usage error or a missing topic or dead letter.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from kokeilu.config import Settings, get_settings
from kokeilu.contracts import deadletter as contract
from kokeilu.contracts import topics
from kokeilu.deadletters import library
from kokeilu.deadletters.library import Filter, ToolError


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", action="append", default=[], help="the service that set it aside (repeatable)")
    parser.add_argument(
        "--reason",
        action="append",
        default=[],
        choices=list(contract.REASONS),
        help="why it was set aside (repeatable)",
    )
    parser.add_argument(
        "--topic", action="append", default=[], help="its source topic, e.g. kokeilu.intake.v1 (repeatable)"
    )
    parser.add_argument("--since", help="dead-lettered at or after: ISO 8601 or a time ago (30m, 2h, 7d)")
    parser.add_argument("--until", help="dead-lettered before: ISO 8601 or a time ago")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kokeilu.deadletters",
        description=__doc__.split("\n\n")[0],
        epilog='Runbook: docs/operations.md, "Dead letters: read, fix, redrive".',
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list dead letters, oldest first")
    _filters(listing)
    listing.add_argument("--limit", type=int, help="only the newest N that match")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    show = commands.add_parser("show", help="one or more dead letters: headers, key and value")
    show.add_argument("ids", nargs="+", metavar="ID", help="<partition>:<offset>")
    show.add_argument("--json", action="store_true")
    redrive = commands.add_parser("redrive", help="send dead letters back to their source topics")
    redrive.add_argument("ids", nargs="*", metavar="ID", help="<partition>:<offset> (with filters: both must match)")
    _filters(redrive)
    redrive.add_argument("--all", action="store_true", help="every dead letter not redriven yet (no filter needed)")
    redrive.add_argument("--dry-run", action="store_true", help="say what would be sent; send and record nothing")
    redrive.add_argument("--json", action="store_true", help="the report as JSON")
    return parser


def _filter(args: argparse.Namespace) -> Filter:
    ids = frozenset(getattr(args, "ids", None) or ())
    for letter_id in ids:
        library.parse_id(letter_id)
    return Filter(
        services=frozenset(args.service),
        reasons=frozenset(args.reason),
        topics=frozenset(args.topic),
        since=library.parse_time(args.since) if args.since else None,
        until=library.parse_time(args.until) if args.until else None,
        ids=ids,
    )


def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    if args.command == "show":
        for letter_id in args.ids:
            library.parse_id(letter_id)
        redrives = library.redrives(settings)
        shown = [library.letter(settings, letter_id) for letter_id in args.ids]
        if args.json:
            print(
                json.dumps([library.detail(letter, redrives) for letter in shown], indent=2, ensure_ascii=False),
                file=out,
            )
        else:
            print("\n\n".join(library.show_text(letter, redrives) for letter in shown), file=out)
        return 0

    chosen = _filter(args)
    if args.command == "redrive" and chosen.empty and not args.all:
        raise ToolError(
            "redrive what? name dead letters (ID ...), filter them (--service, --reason, --topic, "
            "--since, --until), or say --all"
        )
    letters = [letter for letter in library.letters(settings) if chosen.matches(letter)]
    if chosen.ids - {letter.id for letter in letters} and not (
        chosen.services or chosen.reasons or chosen.topics or chosen.since or chosen.until
    ):
        missing = sorted(chosen.ids - {letter.id for letter in letters})
        raise ToolError(f"no dead letter {', '.join(missing)} on {settings.physical_topic(topics.DEADLETTER)}")
    redrives = library.redrives(settings)

    if args.command == "list":
        letters.sort(key=lambda letter: (letter.timestamp_ms, letter.partition, letter.offset))
        if args.limit is not None:
            letters = letters[-args.limit :] if args.limit > 0 else []
        if args.json:
            print(
                json.dumps([library.summary(letter, redrives) for letter in letters], indent=2, ensure_ascii=False),
                file=out,
            )
        else:
            print(library.table(letters, redrives), file=out)
            print(f"{len(letters)} dead letter{'' if len(letters) == 1 else 's'}", file=out)
        return 0

    steps = library.plan(letters, redrives)
    sender = None
    if not args.dry_run and any(not step.skip for step in steps):
        library.ensure_redrives_topic(settings)
        sender = library.Sender(settings)
    try:
        report = library.redrive(steps, settings, sender, dry_run=args.dry_run, by=library.operator(settings))
    finally:
        if sender is not None:
            sender.close()
    if args.json:
        print(json.dumps(report.as_json(), indent=2), file=out)
    else:
        print("\n".join(report.lines()), file=out)
    return 1 if report.failed or report.unrecorded else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    try:
        return run(args, get_settings())
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

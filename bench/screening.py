"""Screening benchmark: proposals screened per second as the number of open proposals grows.

Method
------
1. For each size (default 100, 10,000 and 100,000 open proposals), a fresh evaluation store
   (SQLite in a temporary directory; with --postgres URL also a fresh PostgreSQL database on that
   server) is migrated to head and seeded with that many open known proposals in bulk inserts on
   the store's own tables (`known_proposals` and the duplicate rule's `title_keys` index, with
   the rows the repository would write: screening.index_rows).
2. Titles are municipal pilot titles built from Finnish and English words (place, topic, kind of
   pilot, a qualifier); about 3% of the measured proposals are a stored title with a small edit,
   so the duplicate rule fires as it would in real use.
3. The seed's writes are checkpointed and synced to disk (`settle`), then --warmup proposals are
   screened without the clock, then --measure fresh proposals go through
   the real handler (`handlers.on_proposal_submitted`, the real unit of work: inbox, screening
   row, known-proposal upsert, outbox, evaluation and panel), one transaction each, in sequence.
4. Throughput = measured proposals / wall time. The figure to compare is the ratio of the
   largest size's throughput to the smallest's (1.0 is flat). Timings are noisy on a shared
   machine; each size is measured --repeat times and the best run is kept. With --alternate,
   every size's store is seeded first and the sizes are then measured in turn, --repeat rounds
   (ABBA), so that they share the machine's quiet and busy stretches; the median round counts.
   After each round, with the clock stopped, the proposals it screened are withdrawn again
   through the real handler (their index keys deleted, as a withdrawal does) and the store is
   settled, so that every round starts from the store's own size and with nothing of the round
   before (its checkpoint, its write-back) left to land on the next one. Without that, the
   smallest store would not stay small: 24 rounds of 130 proposals would leave it with 3,220
   open instead of 100.

`python -m bench.screening [--sizes 100,10000,100000] [--measure 300] [--postgres URL]
[--stores sqlite,postgresql] [--alternate --repeat 6]`

The ratio of issue 9 (bench/README.md): `python -m bench.screening --sizes 100,100000 --measure
2000 --stores sqlite --alternate --repeat 6`. Short rounds would flatter the large store: the
settling after a round cuts off what the round left for the checkpoint thread (up to one WAL
cycle, ~55 screenings at 100,000 open), a large part of a short round's background work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import cpu_seconds, median_run  # noqa: E402
from kokeilu.contracts import CloudEvent, new_event  # noqa: E402
from kokeilu.contracts import catalog as types  # noqa: E402
from kokeilu.contracts.proposals import ProposalStatus, ProposalStatusChanged, ProposalSubmitted  # noqa: E402
from kokeilu.store import Database  # noqa: E402
from services.evaluation import handlers, store  # noqa: E402
from services.evaluation.screening import ScreeningPolicy, index_rows  # noqa: E402

MIGRATIONS = ROOT / "services" / "evaluation" / "migrations"

PLACES = [
    "Kera",
    "Leppävaara",
    "Tapiola",
    "Otaniemi",
    "Matinkylä",
    "Espoonlahti",
    "Espoon keskus",
    "Kalajärvi",
    "Niittykumpu",
    "Kivenlahti",
    "Soukka",
    "Olari",
    "Haukilahti",
    "Westend",
    "Suurpelto",
    "Saunalahti",
    "Karakallio",
    "Kilo",
    "Laajalahti",
    "Viherlaakso",
    "Perkkaa",
    "Mankkaa",
    "Nöykkiö",
    "Latokaski",
    "the West Metro corridor",
    "the Waterfront Walkway",
    "Finnoo",
    "Lintuvaara",
    "Vanhakartano",
    "Auroranportti",
]
TOPICS_EN = [
    "autonomous shuttle feeder",
    "smart street lighting",
    "school meal waste tracking",
    "e-scooter parking",
    "heat pump retrofit",
    "stormwater sensors",
    "bike counter network",
    "library robot",
    "snow plough routing",
    "air quality monitoring",
    "noise mapping",
    "district heating optimisation",
    "carbon neutral playground",
    "digital twin of the school yard",
    "demand responsive transit",
    "solar canopy parking",
    "wooden modular classroom",
    "sensor based cleaning",
    "reuse centre logistics",
    "VR history lessons",
    "AI tutoring for mathematics",
    "pedestrian flow analytics",
    "green roof pilot",
    "water leak detection",
    "electric ferry charging",
    "micro mobility hub",
    "LED retrofit",
    "grey water reuse",
    "smart bins",
    "traffic light priority for buses",
]
TOPICS_FI = [
    "älykäs katuvalaistus",
    "robottibussi",
    "kouluruoan hävikin seuranta",
    "sähköpotkulautojen pysäköinti",
    "hulevesianturit",
    "lämpöpumppujen saneeraus",
    "pyörälaskurit",
    "kirjastorobotti",
    "aurausreittien optimointi",
    "ilmanlaadun mittaus",
    "melukartoitus",
    "kaukolämmön optimointi",
    "hiilineutraali leikkipuisto",
    "koulupihan digitaalinen kaksonen",
    "kutsuohjattu joukkoliikenne",
    "aurinkokatos pysäköintiin",
    "puurakenteinen siirtokelpoinen luokka",
    "anturiohjattu siivous",
    "kierrätyskeskuksen logistiikka",
    "virtuaalinen historian opetus",
    "tekoälytuutori matematiikkaan",
    "jalankulkijavirtojen analytiikka",
    "viherkattokokeilu",
    "vesivuotojen tunnistus",
    "sähkölautan lataus",
    "liikkumispalvelujen keskittymä",
    "harmaaveden uudelleenkäyttö",
    "älykkäät roska-astiat",
    "bussien liikennevaloetuudet",
]
KINDS_EN = ["pilot", "trial", "experiment", "proof of concept", "field test", "demonstration", "pilot project"]
KINDS_FI = ["kokeilu", "pilotti", "testaus", "demonstraatio", "kenttäkoe", "pilottihanke"]
QUALIFIERS_EN = [
    "for residents",
    "for schools",
    "in winter conditions",
    "with local companies",
    "phase 2",
    "for elderly residents",
    "at night",
    "with open data",
    "2026",
    "2027",
    "for commuters",
    "",
]
QUALIFIERS_FI = [
    "asukkaille",
    "kouluille",
    "talviolosuhteissa",
    "paikallisten yritysten kanssa",
    "vaihe 2",
    "ikäihmisille",
    "öisin",
    "avoimella datalla",
    "2026",
    "2027",
    "työmatkalaisille",
    "",
]


PARTNERS = [
    "Aalto University",
    "Omnia",
    "HSL",
    "Fortum",
    "Nokia",
    "Kone",
    "VTT",
    "Metropolia",
    "Laurea",
    "Espoo Catering",
    "Länsimetro",
    "Caruna",
    "Helen",
    "Ramboll",
    "Sitowise",
    "YIT",
    "Skanska",
    "Lassila & Tikanoja",
    "Tapiolan lukio",
    "Kauniaisten koulu",
    "Otaniemen lukio",
    "Leppävaaran koulu",
    "Mankkaan koulu",
    "Espoon seurakunnat",
    "HUS",
    "Keva",
    "Sitra",
    "Business Finland",
    "Posti",
    "Elisa",
    "Telia",
    "DNA",
    "Wolt",
    "Foodora",
    "Voi",
    "Tier",
    "Bolt",
    "Vianova",
    "Nuuka",
    "Fiksu Kaupunki Oy",
]


SYLLABLES = [
    "kuusi",
    "koivu",
    "haka",
    "mäki",
    "lahti",
    "niemi",
    "ranta",
    "kallio",
    "metsä",
    "pelto",
    "joki",
    "harju",
    "laakso",
    "saari",
    "kivi",
    "lehto",
    "aho",
    "suo",
    "vuori",
    "salmi",
    "kangas",
    "nummi",
    "kumpu",
    "tammi",
    "pihlaja",
    "kataja",
    "vaahtera",
    "ruusu",
    "lumi",
    "tähti",
]
SITES = ["tie", "polku", "kuja", "puisto", "ranta", "kenttä", "aukio", "koulu", "päiväkoti", "kirjasto"]


def a_site(rng: random.Random) -> str:
    """A street or site, as real titles name them: 30 x 30 x 10 = 9,000 of them."""
    return (rng.choice(SYLLABLES) + rng.choice(SYLLABLES) + rng.choice(SITES)).capitalize()


def a_title(rng: random.Random) -> str:
    """A municipal pilot title, Finnish or English, naming a place and a street or site: unrelated
    titles share words (topics, places, partners) but are rarely near-identical."""
    if rng.random() < 0.5:
        words = [rng.choice(TOPICS_EN).capitalize(), rng.choice(KINDS_EN), "at", a_site(rng), "in", rng.choice(PLACES)]
        if rng.random() < 0.6:
            words += ["with", rng.choice(PARTNERS)]
        words.append(rng.choice(QUALIFIERS_EN))
    else:
        words = [f"{rng.choice(PLACES)}, {a_site(rng)}:", rng.choice(TOPICS_FI) + rng.choice(KINDS_FI)]
        if rng.random() < 0.6:
            words += [rng.choice(PARTNERS) + ":n", "kanssa"]
        words.append(rng.choice(QUALIFIERS_FI))
    return " ".join(w for w in words if w)[:200]


def near_duplicate(rng: random.Random, title: str) -> str:
    """`title` with one small edit (a letter changed or a word added), as a resubmission might be."""
    if rng.random() < 0.5 and len(title) > 5:
        i = rng.randrange(len(title))
        return (title[:i] + rng.choice("aeiouäö") + title[i + 1 :])[:200]
    return (title + " uusi")[:200]


def a_proposal(title: str, submitted_at: datetime) -> ProposalSubmitted:
    return ProposalSubmitted.model_validate(
        {
            "proposal_id": str(uuid.uuid4()),
            "title": title,
            "summary": "A six-month pilot in a real test environment of the city, with residents and companies.",
            "focus_area": "smart_mobility",
            "environment": "kera",
            "proposer": {"organisation": "Example Mobility Oy", "kind": "company"},
            "hypothesis": "The pilot raises the use of the service among residents.",
            "kpis": [{"name": "daily users", "unit": "users/day", "baseline": 0, "target": 200}],
            "budget_eur": 45000,
            "duration_weeks": 26,
            "partners": [],
            "language": "en",
            "submitted_at": submitted_at.isoformat(),
        }
    )


def seed(db: Database, n: int, rng: random.Random) -> list[str]:
    """`n` open known proposals, inserted in bulk with what the repository would write (the
    proposal and its near-duplicate index keys)."""
    now = datetime.now(UTC)
    titles = [a_title(rng) for _ in range(n)]
    batch = 5000
    with db.engine.begin() as conn:
        for i in range(0, n, batch):
            rows, keys = [], []
            for title in titles[i : i + batch]:
                pid = str(uuid.uuid4())
                rows.append(dict(proposal_id=pid, title=title, is_open=True, updated_at=now))
                keys.extend(index_rows(pid, title))  # what KnownProposalRepository.upsert writes
            conn.execute(store.known_proposals.insert(), rows)
            conn.execute(store.title_keys_table.insert(), keys)
    return titles


def settle(db: Database) -> None:
    """Put the seed's writes on disk before the clock starts: a bulk seed of 100,000 proposals
    leaves hundreds of MB to checkpoint and write back, which would otherwise land on the
    measured screenings' commits and fsyncs (a store that grew one proposal at a time has no
    such backlog).

    On PostgreSQL the seed is also vacuumed (VACUUM ANALYZE; until 2026-11-29 ANALYZE alone):
    a store that grew one proposal at a time has been vacuumed by autovacuum as it grew, so its
    rows' hint bits are set and its pages all-visible. A bulk-seeded table that was never
    vacuumed instead has the first screenings that read each heap page set its hint bits (and
    dirty it), and autovacuum starts on its 3 million index rows at some point of the next
    minutes (insert-triggered, throttled), possibly while the clock runs."""
    if db.is_sqlite:
        raw = db.engine.raw_connection()  # outside a transaction, which the checkpoint needs
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    else:
        with db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(sa.text("VACUUM (ANALYZE)"))
            conn.execute(sa.text("CHECKPOINT"))
    os.sync()


def _event(event_type: types.EventType, data: ProposalSubmitted | ProposalStatusChanged) -> CloudEvent:
    """The event the evaluation service would consume for `data`, about its proposal."""
    return new_event(
        event_type.name, data, source="bench/screening", subject=data.proposal_id, dataschema=event_type.dataschema
    )


def screen_many(db: Database, proposals: list[ProposalSubmitted], policy: ScreeningPolicy) -> tuple[float, int, float]:
    """(seconds, duplicates found, CPU seconds) to screen `proposals` one by one through the
    real handler. The CPU is this process's and, on a PostgreSQL server on this machine, that of
    the database's backends (read from /proc; without them, the server's share is missing)."""
    duplicates = 0
    cpu = time.process_time() + server_cpu(db)
    started = time.perf_counter()
    for p in proposals:
        handlers.on_proposal_submitted(_event(types.PROPOSAL_SUBMITTED, p), p, store.EvaluationUnitOfWork(db), policy)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() + server_cpu(db) - cpu
    with db.engine.connect() as conn:
        ids = [p.proposal_id for p in proposals]
        for row in conn.execute(
            sa.select(store.screenings.c.failed_rules).where(store.screenings.c.proposal_id.in_(ids))
        ):
            duplicates += any(f["rule"] == "duplicate" for f in row.failed_rules)
    return elapsed, duplicates, cpu


def server_cpu(db: Database) -> float:
    """CPU seconds the PostgreSQL backends of `db`'s database have used so far, when they are
    processes of this machine (0 on SQLite, or for a server elsewhere)."""
    if db.is_sqlite:
        return 0.0
    with db.engine.connect() as conn:
        pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
        return sum(cpu_seconds(pid) or 0.0 for pid in pids)


def fresh_database(kind: str, tmp: Path, size: int, postgres: str | None) -> tuple[Database, callable]:
    if kind == "sqlite":
        path = tmp / f"evaluation-{size}-{uuid.uuid4().hex[:6]}.db"
        db = Database(f"sqlite:///{path}", MIGRATIONS)
        return db, lambda: (db.dispose(), path.unlink(missing_ok=True))
    name = f"bench_screening_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db = Database(postgres.rsplit("/", 1)[0] + "/" + name, MIGRATIONS)

    def drop():
        db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()

    return db, drop


def _prepared(kind: str, tmp: Path, size: int, postgres: str | None, seed_value: int):
    """A fresh store of `kind` seeded with `size` open proposals and settled: (db, drop, the
    stored titles, rng for the titles to screen, seconds the seed took)."""
    rng = random.Random(seed_value)
    db, drop = fresh_database(kind, tmp, size, postgres)
    try:
        db.migrate()
        t0 = time.perf_counter()
        stored = seed(db, size, rng)
        seeded = time.perf_counter() - t0
        settle(db)
    except BaseException:
        drop()
        raise
    return db, drop, stored, rng, seeded


def _screen_fresh(
    db: Database,
    stored: list[str],
    rng: random.Random,
    warmup: int,
    measure_n: int,
    policy: ScreeningPolicy,
    withdraw_after: bool = False,
) -> tuple[float, int, float]:
    """(seconds, duplicates, CPU seconds) for `measure_n` fresh proposals after `warmup` unclocked
    ones; with `withdraw_after`, all of them are then withdrawn and the store settled (unclocked)."""
    now = datetime.now(UTC)
    titles = [
        near_duplicate(rng, rng.choice(stored)) if rng.random() < 0.03 else a_title(rng)
        for _ in range(warmup + measure_n)
    ]
    proposals = [a_proposal(t, now) for t in titles]
    screen_many(db, proposals[:warmup], policy)
    figures = screen_many(db, proposals[warmup:], policy)
    if withdraw_after:
        withdraw(db, proposals)
        settle(db)
    return figures


def withdraw(db: Database, proposals: list[ProposalSubmitted]) -> None:
    """Withdraw `proposals` through the real handler, in one unit of work (as the consumer applies
    a batch): each stops counting for the duplicate rule and its index keys are deleted."""
    now = datetime.now(UTC)
    changes = [
        ProposalStatusChanged(
            proposal_id=p.proposal_id,
            from_status=ProposalStatus.in_evaluation,
            to_status=ProposalStatus.withdrawn,
            changed_at=now,
        )
        for p in proposals
    ]
    events = [(_event(types.PROPOSAL_STATUS_CHANGED, change), change) for change in changes]
    handlers.on_proposal_events(events, store.EvaluationUnitOfWork(db), None)


def _described(kind: str, run: dict, label: str = "", more: str = "") -> str:
    return (
        f"{kind:10} {label}{run['open_proposals']:>7} open: {run['per_second']:8.1f}/s "
        f"({run['ms_per_proposal']} ms each, CPU {run['cpu_ms_per_proposal']} ms, {run['duplicates_found']} duplicates{more})"
    )


def _run(size: int, measure_n: int, elapsed: float, dups: int, cpu: float, seeded: float, **more: object) -> dict:
    return {
        "open_proposals": size,
        "seconds": round(elapsed, 3),
        "per_second": round(measure_n / elapsed, 1),
        "ms_per_proposal": round(1000 * elapsed / measure_n, 3),
        "cpu_ms_per_proposal": round(1000 * cpu / measure_n, 3),
        "duplicates_found": dups,
        "seed_seconds": round(seeded, 1),
        **more,
    }


def measure(
    sizes: list[int],
    measure_n: int = 300,
    warmup: int = 30,
    repeat: int = 1,
    postgres: str | None = None,
    seed_value: int = 7,
    log=print,
    stores: list[str] | None = None,
    alternate: bool = False,
) -> dict:
    """Figures: for each store kind and size, proposals screened per second; and the ratio of the
    largest size's throughput to the smallest's.

    Sequential (the default): each size in turn gets `repeat` fresh stores, and its best run
    counts. Alternating: one store per size, all seeded first, then `repeat` rounds, each
    screening `warmup` + `measure_n` fresh proposals on every store in turn (the order reversed
    every other round: ABBA), so that the sizes share the same stretches of a noisy machine; a
    size's figure is the median of its rounds, and the ratio of each round is reported too. After
    each round the proposals it screened are withdrawn and the store settled, unclocked: every
    round starts from the store's own size."""
    policy = ScreeningPolicy()
    figures: dict = {
        "sizes": sizes,
        "measured_per_size": measure_n,
        "mode": "alternate" if alternate else "sequential",
        "stores": {},
    }
    kinds = stores or (["sqlite"] + (["postgresql"] if postgres else []))
    with tempfile.TemporaryDirectory(prefix="bench-screening-") as tmpdir:
        for kind in kinds:
            if alternate:
                per_size, pair_ratios = _alternating(
                    kind, Path(tmpdir), sizes, measure_n, warmup, repeat, postgres, seed_value, policy, log
                )
            else:
                per_size = _sequential(
                    kind, Path(tmpdir), sizes, measure_n, warmup, repeat, postgres, seed_value, policy, log
                )
            small, large = per_size[str(min(sizes))], per_size[str(max(sizes))]
            ratio = round(large["per_second"] / small["per_second"], 3)
            cpu_ratio = round(small["cpu_ms_per_proposal"] / large["cpu_ms_per_proposal"], 3)
            figures["stores"][kind] = {
                "by_size": per_size,
                f"ratio_{max(sizes)}_to_{min(sizes)}": ratio,
                f"cpu_ratio_{max(sizes)}_to_{min(sizes)}": cpu_ratio,
            }
            log(
                f"{kind}: throughput at {max(sizes):,} open / at {min(sizes):,} open = {ratio} "
                f"(by CPU per screening: {cpu_ratio})"
            )
            if alternate:
                figures["stores"][kind]["round_ratios"] = pair_ratios
                log(f"{kind}: ratio per round {pair_ratios}")
    return figures


def _sequential(kind, tmp, sizes, measure_n, warmup, repeat, postgres, seed_value, policy, log) -> dict:
    per_size = {}
    for size in sizes:
        best = None
        for _ in range(repeat):
            db, drop, stored, rng, seeded = _prepared(kind, tmp, size, postgres, seed_value)
            try:
                elapsed, dups, cpu = _screen_fresh(db, stored, rng, warmup, measure_n, policy)
            finally:
                drop()
            run = _run(size, measure_n, elapsed, dups, cpu, seeded)
            log(_described(kind, run, more=f", seeded in {run['seed_seconds']} s"))
            if best is None or run["per_second"] > best["per_second"]:
                best = run
        per_size[str(size)] = best
    return per_size


def _alternating(
    kind, tmp, sizes, measure_n, warmup, repeat, postgres, seed_value, policy, log
) -> tuple[dict, list[float]]:
    prepared = {}
    runs: dict[int, list[dict]] = {size: [] for size in sizes}
    try:
        for size in sizes:
            prepared[size] = _prepared(kind, tmp, size, postgres, seed_value)
        for r in range(repeat):
            for size in sizes if r % 2 == 0 else list(reversed(sizes)):
                db, _, stored, rng, seeded = prepared[size]
                elapsed, dups, cpu = _screen_fresh(db, stored, rng, warmup, measure_n, policy, withdraw_after=True)
                run = _run(size, measure_n, elapsed, dups, cpu, seeded, round=r + 1)
                runs[size].append(run)
                log(_described(kind, run, label=f"round {r + 1} "))
    finally:
        for _db, drop, *_ in prepared.values():
            drop()
    per_size = {}
    for size in sizes:
        cpu = sorted(run["cpu_ms_per_proposal"] for run in runs[size])
        per_size[str(size)] = dict(
            median_run(runs[size], "per_second"),
            rounds=[run["per_second"] for run in runs[size]],
            cpu_ms_rounds=[run["cpu_ms_per_proposal"] for run in runs[size]],
            cpu_ms_per_proposal=cpu[len(cpu) // 2],  # the upper middle: the median's CPU side
        )
    small, large = runs[min(sizes)], runs[max(sizes)]
    pair_ratios = [round(b["per_second"] / a["per_second"], 3) for a, b in zip(small, large, strict=True)]
    return per_size, pair_ratios


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.screening", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="100,10000,100000", help="open proposals in the store before measuring, comma separated"
    )
    parser.add_argument("--measure", type=int, default=300, help="fresh proposals screened per size")
    parser.add_argument("--warmup", type=int, default=30, help="proposals screened before the clock starts")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per size (the best is kept); with --alternate, rounds (the median)"
    )
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="seed one store per size first, then measure the sizes in turn, --repeat rounds (ABBA order)",
    )
    parser.add_argument(
        "--stores", help="comma separated: sqlite, postgresql (default: sqlite, and postgresql with --postgres)"
    )
    parser.add_argument("--postgres", metavar="URL", help="also measure on PostgreSQL (a database is created there)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    stores = args.stores.split(",") if args.stores else None
    if stores and ("postgresql" in stores) != bool(args.postgres):
        raise SystemExit("--stores postgresql goes with --postgres URL")
    figures = measure(
        sizes, args.measure, args.warmup, args.repeat, args.postgres, stores=stores, alternate=args.alternate
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2))
    print(json.dumps({kind: f[f"ratio_{max(sizes)}_to_{min(sizes)}"] for kind, f in figures["stores"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

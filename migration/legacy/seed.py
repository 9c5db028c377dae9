"""`furet legacy seed --quotes N`: nine years of realistic, slightly dirty legacy data.

Deterministic for a given ``seed``: customers (one per three quotes, a few heavy ones),
quotes of the five products, 3-6 offers per priced quote from a dozen insurers, epoch-ms
timestamps increasing with the IDs, some rows updated later. A few rows per thousand carry
the dirt the legacy server accepted and the target refuses: zero dates, city names in
latin1 bytes (invalid UTF-8), offers with a NULL price. Then lf_bo is filled the way the
old ETL did (source_id + minute ref_time_id) up to one day before the end of history.

Everything goes in multi-row INSERTs of a few thousand rows (no round trip per row).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql

from migration.config import DbSettings
from migration.db import connection, db_error, query
from migration.sql_literals import values_batches

DAY_MS = 86_400_000
YEARS = 9
PRODUCTS = ("car", "health", "home", "bike", "loan")
STATUSES = ("draft", "priced", "chosen", "expired")
INSURERS = ("Allianz", "AXA", "Generali", "MAAF", "MACIF", "Matmut", "GMF", "Groupama",
            "Direct Assurance", "Amaguiz", "L'olivier", "Leocare")
CITIES = ("Paris", "Lyon", "Marseille", "Lille", "Nantes", "Orléans", "Besançon", "Nîmes",
          "Évry", "Saint-Étienne", "Roubaix", "Gravelines")
FIRST = ("Camille", "Léa", "Hugo", "Chloé", "Lucas", "Zoé", "Théo", "Inès", "Noé", "Manon")
LAST = ("Martin", "Bernard", "Dubois", "Lefèvre", "Garçon", "Moreau", "Laurent", "Roux")
ZERO_DATE = "0000-00-00"

CUSTOMER_COLUMNS = "id, uid, email, full_name, city, birth_date, created_ts, updated_ts"
QUOTE_COLUMNS = ("id, uid, customer_id, product, status, premium_cents, start_date, "
                 "created_ts, updated_ts")
OFFER_COLUMNS = "id, uid, quote_id, insurer, price_cents, rank_no, created_ts, updated_ts"


@dataclass
class SeedReport:
    customers: int = 0
    quotes: int = 0
    offers: int = 0
    dirty: dict[str, int] = field(default_factory=dict)
    bo_quotes: int = 0
    bo_offers: int = 0
    seconds: float = 0.0


def make_uid(kind: str, row_id: int, seed: int) -> str:
    return hashlib.blake2b(f"{kind}:{row_id}:{seed}".encode(), digest_size=8).hexdigest()


class _Generator:
    def __init__(self, quotes: int, seed: int, end_ms: int, dirt_per_thousand: float) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.quotes = quotes
        self.customers = max(1, quotes // 3)
        self.end_ms = end_ms
        self.start_ms = end_ms - YEARS * 365 * DAY_MS
        self.dirt = dirt_per_thousand / 1000.0
        self.report = SeedReport(dirty={"zero_date": 0, "latin1_city": 0, "null_price": 0})

    def _time_at(self, fraction: float) -> int:
        jitter = self.rng.randint(0, 999)
        return int(self.start_ms + fraction * (self.end_ms - self.start_ms - 1000)) + jitter

    def _updated(self, created: int) -> int:
        if self.rng.random() < 0.5:
            return created
        return min(self.end_ms, created + self.rng.randint(1000, 30 * DAY_MS))

    def customers_rows(self) -> Iterator[Sequence[Any]]:
        rng = self.rng
        for cid in range(1, self.customers + 1):
            created = self._time_at((cid - 1) / self.customers)
            city: bytes = rng.choice(CITIES).encode("utf-8")
            birth: str | None = None
            if rng.random() < 0.9:
                year, month, day = rng.randint(1940, 2004), rng.randint(1, 12), rng.randint(1, 28)
                birth = f"{year}-{month:02d}-{day:02d}"
            if rng.random() < self.dirt:
                birth = ZERO_DATE
                self.report.dirty["zero_date"] += 1
            elif rng.random() < self.dirt:
                city = rng.choice(("Orléans", "Besançon", "Nîmes", "Évry")).encode("latin-1")
                self.report.dirty["latin1_city"] += 1
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}" if rng.random() < 0.97 else None
            yield (cid, make_uid("c", cid, self.seed), f"client{cid}@example.org", name, city,
                   birth, created, self._updated(created))
        self.report.customers = self.customers

    def quotes_and_offers(self) -> tuple[list[Sequence[Any]], list[Sequence[Any]]]:
        rng = self.rng
        quotes: list[Sequence[Any]] = []
        offers: list[Sequence[Any]] = []
        offer_id = 0
        heavy = max(1, self.customers // 50)
        for qid in range(1, self.quotes + 1):
            fraction = (qid - 1) / self.quotes
            eligible = max(1, int(fraction * self.customers))
            if rng.random() < 0.2:  # a few customers ask for many quotes
                customer = 1 + rng.randrange(min(heavy, eligible))
            else:
                customer = 1 + rng.randrange(eligible)
            created = self._time_at(fraction)
            updated = self._updated(created)
            status = rng.choices(STATUSES, (15, 45, 25, 15))[0]
            premium = None if status == "draft" else rng.randint(9_000, 250_000)
            start = time.strftime("%Y-%m-%d", time.gmtime(created / 1000 + 86400 * 15))
            if rng.random() < self.dirt / 2:
                start = ZERO_DATE
                self.report.dirty["zero_date"] += 1
            quotes.append((qid, make_uid("q", qid, self.seed), customer,
                           rng.choices(PRODUCTS, (40, 20, 20, 8, 12))[0], status, premium,
                           start, created, updated))
            if status == "draft":
                continue
            for rank, insurer in enumerate(rng.sample(INSURERS, rng.randint(3, 6)), start=1):
                offer_id += 1
                price: int | None = int((premium or 10_000) * rng.uniform(0.8, 1.3))
                if rng.random() < self.dirt:
                    price = None
                    self.report.dirty["null_price"] += 1
                o_created = created + rng.randint(200, 5_000)
                offers.append((offer_id, make_uid("o", offer_id, self.seed), qid, insurer,
                               price, rank, o_created, max(o_created, updated)))
        self.report.quotes, self.report.offers = len(quotes), len(offers)
        return quotes, offers


def _insert(conn: pymysql.connections.Connection, table: str, columns: str,
            rows: Any, progress: Callable[[str, int], None]) -> None:
    with conn.cursor() as cur:
        for batch in values_batches(rows, 5000, 4_000_000):
            cur.execute(f"INSERT INTO {table} ({columns}) VALUES {','.join(batch)}")
            conn.commit()
            progress(table, len(batch))


def _fill_bo(conn: pymysql.connections.Connection, until_ms: int) -> tuple[int, int]:
    """The old ETL's result: bo_* rows with source_id and a minute ref_time_id."""
    minute = ("FROM_UNIXTIME({col} DIV 1000)")
    with conn.cursor() as cur:
        for table in ("quote", "offer"):
            t = minute.format(col="created_ts")
            cur.execute(
                "INSERT IGNORE INTO lf_bo.bo_ref_time (day, month, year, hour, minute) "
                f"SELECT DISTINCT DAY({t}), MONTH({t}), YEAR({t}), HOUR({t}), MINUTE({t}) "
                f"FROM lf_runtime.{table} WHERE created_ts < %s", (until_ms,))
        ref = ("JOIN lf_bo.bo_ref_time r ON r.year = YEAR({t}) AND r.month = MONTH({t}) "
               "AND r.day = DAY({t}) AND r.hour = HOUR({t}) AND r.minute = MINUTE({t})")
        t = minute.format(col="q.created_ts")
        cur.execute(
            "INSERT INTO lf_bo.bo_quote (source_id, uid, ref_time_id, customer_id, product, "
            "status, premium_cents) SELECT q.id, q.uid, r.id, q.customer_id, q.product, "
            f"q.status, q.premium_cents FROM lf_runtime.quote q {ref.format(t=t)} "
            "WHERE q.created_ts < %s ORDER BY q.id", (until_ms,))
        bo_quotes = cur.rowcount
        t = minute.format(col="o.created_ts")
        cur.execute(
            "INSERT INTO lf_bo.bo_offer (source_id, uid, ref_time_id, quote_id, insurer, "
            "price_cents) SELECT o.id, o.uid, r.id, o.quote_id, o.insurer, o.price_cents "
            f"FROM lf_runtime.offer o {ref.format(t=t)} WHERE o.created_ts < %s ORDER BY o.id",
            (until_ms,))
        bo_offers = cur.rowcount
    conn.commit()
    return bo_quotes, bo_offers


def seed(settings: DbSettings, quotes: int, *, seed_value: int = 42,
         end_ms: int | None = None, dirt_per_thousand: float = 3.0,
         progress: Callable[[str, int], None] = lambda table, rows: None) -> SeedReport:
    """Fill the (empty) legacy schemas; see the module docstring."""
    started = time.monotonic()
    end = end_ms if end_ms is not None else int(time.time() * 1000)
    gen = _Generator(quotes, seed_value, end, dirt_per_thousand)
    with connection(settings, "lf_runtime", autocommit=False, sql_mode="") as conn:
        try:
            existing = query(conn, "SELECT COUNT(*) FROM lf_runtime.quote")[0][0]
            if existing:
                raise db_error(Exception(f"lf_runtime.quote already holds {existing} rows; "
                                         "`furet legacy init --drop` empties it"),
                               settings, "lf_runtime", "quote")
            _insert(conn, "lf_runtime.customer", CUSTOMER_COLUMNS, gen.customers_rows(),
                    progress)
            quote_rows, offer_rows = gen.quotes_and_offers()
            _insert(conn, "lf_runtime.quote", QUOTE_COLUMNS, quote_rows, progress)
            _insert(conn, "lf_runtime.offer", OFFER_COLUMNS, offer_rows, progress)
            gen.report.bo_quotes, gen.report.bo_offers = _fill_bo(conn, end - DAY_MS)
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, "lf_runtime") from None
    gen.report.seconds = time.monotonic() - started
    return gen.report

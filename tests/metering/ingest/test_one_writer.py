"""The boundary "only the ingest writer writes the events table" (SPEC §3: one place decides last delivery wins).

import-linter sees imports, not SQL, so this reads the product's source: any statement or ORM call that writes
`metering_event` outside the writer's modules fails here.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("flexmeter", "catalog", "metering")
WRITERS = {Path("metering/ingest/writer.py"), Path("metering/ingest/clickhouse.py")}
# SQL keywords are written in upper case in this code base, which keeps prose ("Copy events from …") out
SQL_WRITE = re.compile(
    r"\b(INSERT\s+INTO|COPY|UPDATE|DELETE\s+FROM|TRUNCATE(\s+TABLE)?)\s+(\{[^}]*\}|metering_event\b|events\b)"
)
ORM_WRITE = re.compile(r"\bEvent\.objects\b[^\n]*\.(create|bulk_create|update|bulk_update|delete|get_or_create)\(")


def writes_events(source: str) -> list[str]:
    lines = []
    for line in source.splitlines():
        sql = SQL_WRITE.search(line)
        if (sql and ("event" in line.lower())) or ORM_WRITE.search(line):
            lines.append(line.strip())
    return lines


def test_the_detector_sees_the_writes_it_looks_for():
    assert writes_events('cursor.copy(f"COPY metering_event ({COLUMNS}) FROM STDIN")')
    assert writes_events('sql = "INSERT INTO metering_event (a) VALUES (%s)"')
    assert writes_events("Event.objects.filter(pk=1).delete()")
    assert not writes_events("Event.objects.filter(pk=1).count()")
    assert not writes_events('"INSERT INTO metering_customer (a) VALUES (%s)"')
    assert not writes_events('"""Copy events from the Django database into ClickHouse."""')


def test_only_the_ingest_writer_writes_the_events_table():
    offenders = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or relative in WRITERS:
                continue
            found = writes_events(path.read_text())
            if found:
                offenders[str(relative)] = found
    assert offenders == {}

"""The side-by-side benchmark leaves past months in one part, as the events table does an hour after their last
write (metering/clickhouse/schema.py), and the newest month as written."""

from benchmarks.clickhouse import merge_past_months
from metering.clickhouse.config import clickhouse_client
from tests.conftest import chdb_backend


class RecordingClient:
    def __init__(self, partitions):
        self.partitions, self.commands = partitions, []

    def query(self, sql, parameters):
        return type("Result", (), {"result_rows": [(partition,) for partition in self.partitions]})()

    def command(self, sql, parameters):
        self.commands.append(sql.replace("%(partition)s", repr(parameters["partition"])))


def test_every_month_but_the_newest_is_merged():
    client = RecordingClient(["202501", "202502", "202503"])
    merge_past_months(client, "bench")
    assert client.commands == [
        "OPTIMIZE TABLE bench.events PARTITION ID '202501' FINAL",
        "OPTIMIZE TABLE bench.events PARTITION ID '202502' FINAL",
    ]


def test_the_merge_runs_on_chdb(chdb_path):
    backend, drop = chdb_backend(chdb_path)
    client = clickhouse_client(backend)
    for month in (1, 2, 3):
        for day in (1, 2):  # two inserts, two parts
            client.command(
                f"INSERT INTO {backend.database}.events (environment_id, event_id, event_name, timestamp, version) "
                f"VALUES (1, 'e{month}{day}', 'n', '2025-0{month}-0{day} 00:00:00', 1)"
            )
    merge_past_months(client, backend.database)
    parts = client.query(
        "SELECT partition_id, count() FROM system.parts WHERE database = %(db)s AND table = 'events' AND active "
        "GROUP BY partition_id ORDER BY partition_id",
        parameters={"db": backend.database},
    ).result_rows
    assert parts[:2] == [("202501", 1), ("202502", 1)]
    assert parts[2][0] == "202503"
    assert client.query(f"SELECT count() FROM {backend.database}.events FINAL").result_rows == [(6,)]
    drop()

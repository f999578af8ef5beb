"""Sources of event records for the import: JSON Lines or CSV files, gzip-compressed or not, or stdin.

A source yields each record with its line number, or a `Rejected` for a line that cannot be read as an event;
only a source that cannot be read at all (missing file, unknown format, CSV without the required columns) raises
`SourceError`.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast

from flexmeter.csv_cells import csv_cell_in
from metering import exactjson

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

FORMATS = ("jsonl", "csv")
CSV_FIELDS = ("event_id", "event_name", "external_customer_id", "timestamp", "source")
CSV_REQUIRED = ("event_name", "external_customer_id")
PROPERTY_PREFIX = "properties."
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_GZIP_MAGIC = b"\x1f\x8b"


class SourceError(Exception):
    """The source cannot be read as events at all (missing file, unknown format, CSV header without the
    required columns). Individual bad records are never a SourceError: they are rejected and reported."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that was not imported: its line in the source, the reasons keyed by field, and what was read."""

    line: int
    errors: dict[str, str]
    record: Any = None
    text: str | None = None

    def reason(self) -> str:
        return "; ".join(f"{key}: {message}" if key else message for key, message in self.errors.items())

    def as_json(self) -> str:
        """One line of the rejects file: `{"line", "errors", "event"}`, or `"text"` when the line did not parse."""
        entry: dict[str, Any] = {"line": self.line, "errors": self.errors}
        if self.text is not None:
            entry["text"] = self.text
        else:
            entry["event"] = self.record
        return exactjson.dumps(entry)


class EventSource:
    """An open source of event records: yields `(line, raw_dict)` for records that parsed, `Rejected` otherwise.

    `total_bytes` (None for stdin) and `position()` measure progress in bytes of the file as stored, compressed or
    not. `ignored_columns` names CSV columns that are not event fields (ignored, as the API ignores unknown
    fields).
    """

    def __init__(self, *, name: str, stream: IO[bytes], format: str | None, total_bytes: int | None):
        self.name = name
        self.total_bytes = total_bytes
        self.ignored_columns: tuple[str, ...] = ()
        self._raw = stream
        buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, stream))
        self.compressed = buffered.peek(2)[:2] == _GZIP_MAGIC
        self._binary = cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb") if self.compressed else buffered)
        self._counted = buffered
        self.format = format or _format_from_name(name) or self._sniff_format()
        if self.format not in FORMATS:
            raise SourceError(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        self._check_not_json_array()
        self._csv_reader: CsvReader | None = None
        self._csv_header: list[str] = []
        if self.format == "csv":
            self._csv_open()

    def position(self) -> int:
        try:
            return self._counted.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        self._binary.close()
        self._raw.close()

    def records(self) -> Iterator[tuple[int, Any] | Rejected]:
        if self.format == "csv":
            return self._csv_records()
        return self._jsonl_records()

    def _head(self) -> bytes:
        try:
            head = self._binary.peek(64) if hasattr(self._binary, "peek") else b""
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"{self.name}: cannot read ({exc})") from None
        return head.removeprefix(codecs.BOM_UTF8).lstrip()

    def _sniff_format(self) -> str:
        head = self._head()
        return "jsonl" if head[:1] in (b"{", b"[", b"") else "csv"

    def _check_not_json_array(self) -> None:
        if self.format == "jsonl" and self._head()[:1] == b"[":
            raise SourceError(
                f"{self.name} looks like one JSON array; import_events reads JSON Lines (one event object per "
                "line): convert it first, e.g. jq -c '.[]' file.json > file.jsonl"
            )

    def _jsonl_records(self) -> Iterator[tuple[int, Any] | Rejected]:
        for number, line in enumerate(self._binary, start=1):
            if number == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            if not line.strip():
                continue
            try:
                yield number, exactjson.loads(line)
            except UnicodeDecodeError:
                yield Rejected(line=number, errors={"": "is not valid UTF-8"}, text=_line_text(line))
            except json.JSONDecodeError as exc:
                reason = f"is not valid JSON ({exc.msg} at column {exc.colno})"
                yield Rejected(line=number, errors={"": reason}, text=_line_text(line))
            except (ValueError, RecursionError) as exc:
                reason = "is nested too deeply" if isinstance(exc, RecursionError) else f"is not valid JSON ({exc})"
                yield Rejected(line=number, errors={"": reason}, text=_line_text(line))

    def _csv_open(self) -> None:
        text = io.TextIOWrapper(self._binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        self._csv_reader = csv.reader(text)
        try:
            header = next(self._csv_reader, None)
        except (csv.Error, OSError, EOFError) as exc:
            raise SourceError(f"{self.name}: cannot read the CSV header ({exc})") from None
        if header is None:
            return
        header = [name.strip() for name in header]
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise SourceError(f"{self.name}: the CSV header repeats {', '.join(repeated)}")
        missing = [name for name in CSV_REQUIRED if name not in header]
        if missing:
            raise SourceError(
                f"{self.name}: the CSV header lacks {', '.join(missing)} (columns: event_id, event_name, "
                "external_customer_id, timestamp, source, and properties as JSON or as properties.<key> columns)"
            )
        if "properties" in header and any(name.startswith(PROPERTY_PREFIX) for name in header):
            raise SourceError(
                f"{self.name}: use either a properties column holding JSON or properties.<key> columns, not both"
            )
        self._csv_header = header
        self.ignored_columns = tuple(
            name
            for name in header
            if name not in CSV_FIELDS
            and name != "properties"
            and not (name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX))
        )

    def _csv_records(self) -> Iterator[tuple[int, Any] | Rejected]:
        if self._csv_reader is None or not self._csv_header:
            return
        reader, header = self._csv_reader, self._csv_header
        width = len(header)
        last_line = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Rejected(line=last_line + 1, errors={"": f"is not valid CSV ({exc})"}, text="")
                last_line = reader.line_num
                continue
            line, last_line = last_line + 1, reader.line_num
            if not row:
                continue
            if len(row) != width:
                reason = f"has {len(row)} fields but the header has {width}"
                yield Rejected(line=line, errors={"": reason}, record=_csv_text(row))
                continue
            try:
                "".join(row).encode("utf-8")
            except UnicodeEncodeError:
                yield Rejected(line=line, errors={"": "is not valid UTF-8"}, record=_csv_text(row))
                continue
            yield _csv_record(line, header, [csv_cell_in(value) for value in row])


def _csv_text(row: list[str]) -> list[str]:
    return [value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for value in row]


def _csv_record(line: int, header: list[str], row: list[str]) -> tuple[int, Any] | Rejected:
    """A CSV row as the API's JSON object. Empty cells are absent fields; `properties.<key>` cells stay strings
    (a numeric string is a number for every aggregation, SPEC §3)."""
    raw: dict[str, Any] = {}
    properties: dict[str, Any] | None = None
    for name, value in zip(header, row, strict=True):
        if name in CSV_FIELDS:
            if value != "":
                raw[name] = value
        elif name == "properties":
            if value.strip():
                try:
                    raw["properties"] = exactjson.loads(value)
                except (ValueError, RecursionError) as exc:
                    reason = f"is not valid JSON ({getattr(exc, 'msg', exc)})"
                    return Rejected(
                        line=line, errors={"properties": reason}, record=dict(zip(header, row, strict=True))
                    )
        elif name.startswith(PROPERTY_PREFIX) and value != "":
            properties = properties if properties is not None else {}
            properties[name[len(PROPERTY_PREFIX) :]] = value
    if properties is not None:
        raw["properties"] = properties
    return line, raw


def _line_text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r\n")


def _format_from_name(name: str) -> str | None:
    base = name[:-3] if name.lower().endswith(".gz") else name
    return _EXTENSIONS.get(os.path.splitext(base)[1].lower())


def source_open(path: str, *, format: str | None = None, stdin: IO[bytes] | None = None) -> EventSource:
    """Open `path` ("-" for stdin) as an event source. Gzip is detected from the data, the format from
    `format`, else the file name (.jsonl/.ndjson/.json/.csv, optionally .gz), else the first byte."""
    if format is not None and format not in FORMATS:
        raise SourceError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if path == "-":
        return EventSource(name="<stdin>", stream=cast(IO[bytes], stdin), format=format, total_bytes=None)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by EventSource.close()
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        total = os.fstat(stream.fileno()).st_size or None
        return EventSource(name=path, stream=stream, format=format, total_bytes=total)
    except BaseException:
        stream.close()
        raise

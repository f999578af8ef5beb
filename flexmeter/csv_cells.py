"""CSV cells safe to open in a spreadsheet, and read back unchanged (formula injection, issue #16).

Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return
before one) as a formula: an event name `=HYPERLINK(…)` sent by anyone with an API key would run on the machine of
whoever opens the export. Every CSV we write goes through `csv_writer`, which puts an apostrophe in front of such a
cell — spreadsheets show the text as written and hide the apostrophe.

Two choices keep the files useful:
- **Numbers stay numbers**: a cell that is a plain decimal number (`-5`, `+1.5`, `-2e3`) is not a formula in any
  spreadsheet and is written as is, so a usage column of `-5` still sums.
- **Reversible**: a cell that already starts with an apostrophe followed by one of those characters (or by another
  apostrophe) gets one more, and `csv_cell_in` drops exactly one apostrophe from such cells only. So
  `import_events` reads an exported file back unchanged, while a hand-made CSV whose cell is `'hello` keeps its
  apostrophe.
"""

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _escaped_start(text: str) -> bool:
    return text.startswith(ESCAPE) and text[1:2] != "" and text[1] in (*FORMULA_STARTS, ESCAPE)


def csv_cell_out(value: Any) -> Any:
    """`value` as a cell no spreadsheet runs as a formula (non-text values are left to the csv module)."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(FORMULA_STARTS):
        return value if _PLAIN_NUMBER.fullmatch(value) else ESCAPE + value
    if _escaped_start(value):
        return ESCAPE + value
    return value


def csv_cell_in(text: str) -> str:
    """The value a cell written by `csv_cell_out` stood for."""
    return text[1:] if _escaped_start(text) else text


class SafeCsvWriter:
    """`csv.writer` whose every cell goes through `csv_cell_out`."""

    def __init__(self, out: TextIO, **options: Any):
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell_out(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: TextIO, **options: Any) -> SafeCsvWriter:
    return SafeCsvWriter(out, **options)

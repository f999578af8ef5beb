"""Admin form fields for a meter's filters and the metadata of features, plans and subscriptions: rows of inputs
instead of a JSON text box.

Each field only shapes the rows into what the API takes (a filter list, a string map); `catalog.rules` judges the
result, and `row_error` turns a rule's path (`filters[1].values`, `metadata.plan`) back into the row it concerns,
so the message names the row and its inputs are marked invalid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from catalog.forms import OPERATOR_LABELS
from catalog.rules import FILTER_OPERATORS

#: Rows read from one POST at most: bounds the work a forged row count can ask for (the rules bound the rest).
MAX_POSTED_ROWS = 200


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    kind: str = "text"  # text, textarea or select
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""
    mono: bool = False


Row = dict[str, str]


class RowsWidget(forms.Widget):
    """A table of inputs named `<name>-<row>-<column>` with the row count in `<name>-rows`.

    Blank rows are added below the given ones for new entries; `static/js/admin_rows.js` adds more on request
    (without it, saving and coming back gives fresh blank rows). `invalid` holds the (row, column) cells a rule
    refused, set by the form after validation.
    """

    class Media:
        js = ("js/admin_rows.js",)
        css = {"all": ("css/admin_rows.css",)}

    def __init__(self, columns: tuple[Column, ...], *, noun: str, extra: int = 2, attrs: dict | None = None):
        super().__init__(attrs)
        self.columns = columns
        self.noun = noun
        self.extra = extra
        self.invalid: set[tuple[int, str]] = set()

    def __deepcopy__(self, memo: dict) -> RowsWidget:
        copy = super().__deepcopy__(memo)
        copy.invalid = set()
        return copy

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[Row] | None:
        count_text = data.get(f"{name}-rows")
        if count_text is None:
            return None
        try:
            count = min(max(int(count_text), 0), MAX_POSTED_ROWS)
        except (TypeError, ValueError):
            count = 0
        return [{column.name: data.get(f"{name}-{index}-{column.name}", "") for column in self.columns}
                for index in range(count)]  # fmt: skip

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return f"{name}-rows" not in data

    def id_for_label(self, id_: str) -> str:
        return f"{id_}-0-{self.columns[0].name}" if id_ else ""

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> SafeString:
        rows: list[Row] = list(value or [])
        while rows and self._blank(rows[-1]):  # a form shown again keeps its own blank rows out of the count
            rows.pop()
        rows += [{} for _ in range(self.extra)]
        base_id = (attrs or {}).get("id") or self.attrs.get("id") or f"id_{name}"
        head = format_html_join(
            "",
            "<th scope='col'>{}{}</th>",
            (
                (column.label, format_html(" <span class='rows-help'>{}</span>", column.help) if column.help else "")
                for column in self.columns
            ),
        )
        body = format_html_join("", "{}", ((self._row(name, base_id, index, row),) for index, row in enumerate(rows)))
        return format_html(
            '<div class="rows-widget" data-rows-widget data-noun="{}">'
            '<input type="hidden" name="{}-rows" value="{}" data-rows-count>'
            '<table class="rows-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>'
            '<button type="button" class="button rows-add" data-rows-add hidden>Add another {}</button></div>',
            self.noun,
            name,
            len(rows),
            head,
            body,
            self.noun.lower(),
        )

    def _blank(self, row: Row) -> bool:
        return all(not row.get(column.name, "").strip() for column in self.columns if column.kind != "select")

    def _row(self, name: str, base_id: str, index: int, row: Row) -> SafeString:
        cells = format_html_join(
            "", "{}", ((self._cell(name, base_id, index, column, row.get(column.name, "")),) for column in self.columns)
        )
        return format_html("<tr data-row>{}</tr>", cells)

    def _cell(self, name: str, base_id: str, index: int, column: Column, value: str) -> SafeString:
        invalid = (index, column.name) in self.invalid
        common = {
            "name": f"{name}-{index}-{column.name}",
            "id": f"{base_id}-{index}-{column.name}",
            "aria-label": f"{self.noun} {index + 1} {column.label.lower()}",
            "data-column": column.label.lower(),
        }
        if invalid:
            common["aria-invalid"] = "true"
        attributes = format_html_join(" ", '{}="{}"', common.items())
        css = "vTextField" + (" mono" if column.mono else "")
        if column.kind == "select":
            options = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                ((choice, " selected" if choice == value else "", label) for choice, label in column.choices),
            )
            control = format_html("<select {}>{}</select>", attributes, options)
        elif column.kind == "textarea":
            control = format_html('<textarea {} class="{}" rows="2">\n{}</textarea>', attributes, css, value)
        else:
            control = format_html(
                '<input type="text" {} class="{}" value="{}" autocomplete="off">', attributes, css, value
            )
        return format_html('<td class="{}">{}</td>', "errors" if invalid else "", control)


class RowsField(forms.Field):
    """Rows in, the API's value out (`to_python`); `rows_of` draws a stored value as rows."""

    def prepare_value(self, value: Any) -> list[Row]:
        if value is None or value == "":
            return []
        if isinstance(value, list) and all(isinstance(row, dict) and self.is_row(row) for row in value):
            return value
        return self.rows_of(value)

    def is_row(self, row: dict) -> bool:
        return all(isinstance(text, str) for text in row.values())

    def rows_of(self, value: Any) -> list[Row]:
        raise NotImplementedError

    def positions(self, rows: list[Row] | None) -> list[int]:
        """The row each entry of `to_python`'s result came from (blank rows are skipped)."""
        raise NotImplementedError

    def row_error(self, path: str, message: str, rows: list[Row] | None) -> tuple[str, tuple[int, str] | None]:
        """A rule's error worded after its row, with the (row, column) of the input to mark, if one is known."""
        raise NotImplementedError


FILTER_COLUMNS = (
    Column("key", "Property", mono=True),
    Column("operator", "Operator", kind="select", choices=tuple((op, OPERATOR_LABELS[op]) for op in FILTER_OPERATORS)),
    Column("values", "Values", kind="textarea", help="one per line"),
)
_FILTER_PATH = re.compile(r"^filters\[(\d+)\](?:\.(key|operator|values)(?:\[(\d+)\])?)?$")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class FilterRowsField(RowsField):
    """A meter's filters: one row per property, values one per line (trimmed, as the dashboard's inputs do)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", RowsWidget(FILTER_COLUMNS, noun="Filter"))
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def is_row(self, row: dict) -> bool:
        return isinstance(row.get("values", ""), str) and super().is_row(row)

    def rows_of(self, value: Any) -> list[Row]:
        if not isinstance(value, list):
            return []
        return [{"key": str(item.get("key", "")), "operator": str(item.get("operator") or "in"),
                 "values": "\n".join(str(text) for text in item.get("values") or [])}
                for item in value if isinstance(item, dict)]  # fmt: skip

    def _entries(self, rows: list[Row] | None) -> list[tuple[int, dict]]:
        entries = []
        for index, row in enumerate(rows or []):
            key, values = row.get("key", "").strip(), _lines(row.get("values", ""))
            if key or values:
                entries.append((index, {"key": key, "operator": row.get("operator") or "in", "values": values}))
        return entries

    def to_python(self, value: Any) -> list[dict] | None:
        if value is None:
            return None
        return [entry for _, entry in self._entries(value)]

    def positions(self, rows: list[Row] | None) -> list[int]:
        return [index for index, _ in self._entries(rows)]

    def row_error(self, path: str, message: str, rows: list[Row] | None) -> tuple[str, tuple[int, str] | None]:
        """`filters[1].values` → ("Filter 2 (region), values: …", (row, "values")); `filters` is shown as it is."""
        match = _FILTER_PATH.match(path)
        if match is None:
            return message, None
        position, column, value_index = int(match[1]), match[2], match[3]
        positions = self.positions(rows)
        row = positions[position] if position < len(positions) else position
        key = rows[row].get("key", "").strip() if rows and row < len(rows) else ""
        where = f"Filter {row + 1}" + (f" ({key})" if key else "")
        if column is None:
            return f"{where}: {message}", (row, "key")
        part = column if value_index is None else f"value {int(value_index) + 1}"
        return f"{where}, {part}: {message}", (row, column)


METADATA_COLUMNS = (Column("key", "Key", mono=True), Column("value", "Value"))


class MetadataRowsField(RowsField):
    """Metadata (features, plans, subscriptions): one row per key. Keys and values are kept as typed (the API keeps
    them too); `metadata_clean` of the catalog's rules judges the map."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", RowsWidget(METADATA_COLUMNS, noun="Entry"))
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Text values your own systems read; at most 50 keys.")
        super().__init__(**kwargs)

    def rows_of(self, value: Any) -> list[Row]:
        if not isinstance(value, dict):
            return []
        return [{"key": str(key), "value": text if isinstance(text, str) else str(text)} for key, text in value.items()]

    def _entries(self, rows: list[Row] | None) -> list[tuple[int, str, str]]:
        return [(index, row.get("key", ""), row.get("value", "")) for index, row in enumerate(rows or [])
                if row.get("key", "").strip() or row.get("value", "").strip()]  # fmt: skip

    def to_python(self, value: Any) -> dict[str, str] | None:
        if value is None:
            return None
        result: dict[str, str] = {}
        for index, key, text in self._entries(value):
            if key in result:
                # A map holds one value per key: two rows of one key cannot both be kept.
                raise forms.ValidationError(f"Entry {index + 1}: the key “{key}” is already used by an earlier row")
            result[key] = text
        return result

    def positions(self, rows: list[Row] | None) -> list[int]:
        return [index for index, _, _ in self._entries(rows)]

    def row_error(self, path: str, message: str, rows: list[Row] | None) -> tuple[str, tuple[int, str] | None]:
        """`metadata.plan` → ("Key “plan”: …", (row of plan, "key")); `metadata` is shown as it is."""
        if not path.startswith("metadata."):
            return message, None
        key = path.removeprefix("metadata.")
        row = next((index for index, found, _ in self._entries(rows) if found == key), None)
        return f"Key “{key}”: {message}", (row, "key") if row is not None else None

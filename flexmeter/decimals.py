"""Exact decimal text, shared by every app: what the API returns for decimal settings and what pages display.

`Decimal.normalize()` and decimal arithmetic round to the current context (28 significant digits by default), so
`1.0000000000000000000000000000001` would become `1`. Formatting never rounds, so the text is built from the
formatted digits: plain notation (no exponent), trailing fractional zeros stripped, negative zero as `0`.
"""

from decimal import Decimal


def decimal_text(number: Decimal, *, grouped: bool = False) -> str:
    """Shortest exact plain text of a finite decimal: `1.50` → `1.5`, `1E+3` → `1000`, `-0.0` → `0`.

    `grouped` adds thousands separators to the integer part (`1,234,567.125`), as the dashboard shows quantities.
    The caller bounds the exponent: `1E+999999` would be written out in full.
    """
    text = format(number, ",f" if grouped else "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text

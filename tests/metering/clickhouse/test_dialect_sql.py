"""The ClickHouse dialect writes each operand of an expression once, so the SQL grows linearly with the expression.

A guard reads its operands several times; nesting guarded text directly doubled it at every level, and the
17-factor expression of the CEL tests became gigabytes of SQL: the chdb test pass was killed for memory (exit 137).
"""

from catalog.expressions import compile_expression
from metering.usage.cel_sql import expression_sql
from metering.usage.dialects.base import Params
from metering.usage.dialects.clickhouse import ClickHouseDialect


def sql_length(expression: str) -> int:
    return len(expression_sql(compile_expression(expression), ClickHouseDialect("db"), Params()))


def test_a_product_of_many_factors_stays_small():
    one = sql_length("a * 2")
    six = sql_length(" * ".join(["a"] * 6))
    seventeen = sql_length(" * ".join(["a"] * 17))
    # before: six factors were about 600 000 characters, seventeen never finished
    assert six < 8 * one
    assert seventeen < 20 * one


def test_nested_sums_divisions_and_minimums_stay_small():
    one = sql_length("min(a, b)")
    nested = sql_length("min(max((a + b) / (c - d), a / b), min(a - b, (c + d) * 2)) + max(a, min(b, max(c, d)))")
    assert nested < 16 * one

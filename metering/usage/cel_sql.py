"""Translate a compiled CEL expression (catalog/expressions.py) into a per-event SQL quantity (SPEC §5.6).

The SQL yields NULL — the event is excluded — whenever CEL would yield an error: a property that is neither
missing nor numeric, division by zero, sqrt/log outside their domain, pow overflow, or an error reaching the
result through any operator. `&&` and `||` follow SQL's three-valued logic, which matches CEL's commutative
error handling (`false && error` is false). A ternary with an erroneous condition is an error.
"""

from __future__ import annotations

from catalog.expressions import Binary, Boolean, Call, CompiledExpression, Conditional, Node, Number, Property, Unary
from metering.usage.dialects.base import Dialect, Params


def expression_sql(expression: CompiledExpression, dialect: Dialect, params: Params) -> str:
    return _node(expression.root, dialect, params)


def _node(node: Node, d: Dialect, p: Params) -> str:
    if isinstance(node, Number):
        return d.literal(node.value)
    if isinstance(node, Boolean):
        return "(1 = 1)" if node.value else "(1 = 0)"
    if isinstance(node, Property):
        return d.cel_variable(p, node.name)
    if isinstance(node, Unary):
        operand = _node(node.operand, d, p)
        return d.negate(operand) if node.op == "-" else f"(NOT {operand})"
    if isinstance(node, Binary):
        left, right = _node(node.left, d, p), _node(node.right, d, p)
        if node.op == "&&":
            return f"({left} AND {right})"
        if node.op == "||":
            return f"({left} OR {right})"
        if node.op in ("+", "-", "*", "/"):
            return d.arithmetic(node.op, left, right)
        return d.compare(node.op, left, right)
    if isinstance(node, Conditional):
        condition = _node(node.condition, d, p)
        when_true, when_false = _node(node.when_true, d, p), _node(node.when_false, d, p)
        return f"(CASE WHEN {condition} THEN {when_true} WHEN NOT {condition} THEN {when_false} END)"
    if isinstance(node, Call):
        return d.call(node.function, [_node(arg, d, p) for arg in node.args])
    raise TypeError(f"unexpected node {node!r}")  # pragma: no cover - the AST is closed

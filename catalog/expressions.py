"""CEL quantity expressions of meters (SPEC §5.6): parse with cel-python, keep our own small typed AST.

cel-python's parser gives a Lark tree for the whole CEL language. A meter expression uses a small, numeric subset:
numbers, top-level property names, `+ - * /`, comparisons, `&& || !`, `cond ? a : b` and a fixed set of functions.
`compile_expression` walks the tree once, rejects everything outside that subset with a clear message, checks
types (a quantity is a number; conditions are booleans) and returns an immutable AST that the usage engine
translates into SQL (metering/usage/cel_sql.py). Evaluation never happens in Python, so the totals and the
debugger share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum

from celpy.celparser import CELParseError, CELParser
from lark import Token, Tree

from flexmeter.limits import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS, NUMBER_RULE, number_problem

MAX_EXPRESSION_LENGTH = 2000
MAX_DEPTH = 100  # nested operators/calls; wrapper rules of the grammar do not count


class ExpressionError(ValueError):
    """The expression cannot be used as a meter quantity. `message` is safe to show to the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Kind(Enum):
    NUMBER = "number"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class Number:
    value: Decimal


@dataclass(frozen=True)
class Boolean:
    value: bool


@dataclass(frozen=True)
class Property:
    """A top-level event property; missing → 0, numeric string → number, anything else → error."""

    name: str


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "!"
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / < <= > >= == != && ||
    left: Node
    right: Node


@dataclass(frozen=True)
class Conditional:
    condition: Node
    when_true: Node
    when_false: Node


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]


Node = Number | Boolean | Property | Unary | Binary | Conditional | Call

# name → number of arguments. Every function takes and returns numbers.
FUNCTIONS: dict[str, int] = {
    "min": 2,
    "max": 2,
    "abs": 1,
    "ceil": 1,
    "floor": 1,
    "round": 1,
    "sqrt": 1,
    "log": 1,
    "pow": 2,
}

ARITHMETIC_OPS = frozenset({"+", "-", "*", "/"})
COMPARISON_OPS = frozenset({"<", "<=", ">", ">=", "==", "!="})
LOGICAL_OPS = frozenset({"&&", "||"})

_RULE_OPS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
}

# Rules that only wrap one child when no operator is present (precedence levels, parentheses).
_WRAPPERS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member"}
    | {"primary", "paren_expr"}
)

_UNSUPPORTED = {
    "relation_in": "the 'in' operator is not supported",
    "multiplication_mod": "the '%' operator is not supported",
    "member_dot": "nested fields (a.b) are not supported: use a top-level property name",
    "member_dot_arg": "method calls (a.f()) are not supported",
    "member_index": "indexing (a[...]) is not supported: use a top-level property name",
    "member_object": "object construction is not supported",
    "dot_ident_arg": "qualified names (.f()) are not supported",
    "dot_ident": "qualified names (.a) are not supported",
    "list_lit": "lists are not supported",
    "map_lit": "maps are not supported",
}


@dataclass(frozen=True)
class CompiledExpression:
    """A checked, immutable meter expression: the source text, its AST (always a number) and the properties it reads."""

    text: str
    root: Node
    properties: frozenset[str]

    def __str__(self) -> str:
        return self.text


def compile_expression(text: str) -> CompiledExpression:
    """Parse and check a CEL quantity expression; raise ExpressionError with a user-facing message when unusable."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("Expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"Expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = CELParser().parse(text)
    except CELParseError as exc:
        where = f" at line {exc.line}, column {exc.column}" if exc.line else ""
        raise ExpressionError(f"Syntax error{where}: the expression is not valid CEL") from None
    except RecursionError:
        raise ExpressionError("Expression is nested too deeply") from None
    builder = _Builder()
    root = builder.build(tree, depth=0)
    if _kind(root) is not Kind.NUMBER:
        raise ExpressionError("Expression must produce a number, not a boolean (use cond ? a : b)")
    properties = frozenset(_properties(root))
    if not properties:
        raise ExpressionError("Expression must reference at least one event property")
    _digits(root)
    return CompiledExpression(text=text, root=root, properties=properties)


class _Builder:
    """Turns cel-python's Lark tree into our AST, rejecting what a meter expression may not use."""

    def build(self, tree: Tree | Token, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ExpressionError("Expression is nested too deeply")
        if isinstance(tree, Token):  # pragma: no cover - the grammar wraps every token in a rule
            raise ExpressionError(f"Unexpected token {tree.value!r}")
        while tree.data in _WRAPPERS and len(tree.children) == 1 and isinstance(tree.children[0], Tree):
            tree = tree.children[0]
        rule = tree.data
        children = tree.children
        handler = getattr(self, f"_rule_{rule}", None)
        if handler is not None:
            return handler(children, depth + 1)
        if rule in _UNSUPPORTED:
            raise ExpressionError(f"Unsupported construct: {_UNSUPPORTED[rule]}")
        raise ExpressionError(f"Unsupported construct: {rule}")  # pragma: no cover - grammar is closed

    def _single(self, children: list, depth: int) -> Node:
        if len(children) != 1:  # pragma: no cover - grammar guarantees the shape
            raise ExpressionError("Malformed expression")
        return self.build(children[0], depth)

    _rule_member = _single
    _rule_primary = _single
    _rule_paren_expr = _single

    def _rule_expr(self, children: list, depth: int) -> Node:
        if len(children) == 1:
            return self.build(children[0], depth)
        condition, when_true, when_false = (self.build(child, depth) for child in children)
        _expect(condition, Kind.BOOLEAN, "the condition of '?:'")
        _expect(when_true, Kind.NUMBER, "the branches of '?:'")
        _expect(when_false, Kind.NUMBER, "the branches of '?:'")
        return Conditional(condition, when_true, when_false)

    def _binary_chain(self, children: list, depth: int, op: str | None = None) -> Node:
        if len(children) == 1:
            return self.build(children[0], depth)
        left_tree, right_tree = children
        if op is None:
            # `relation`, `addition`, `multiplication`: the left child is an operator rule holding the left operand.
            op_rule = left_tree.data
            if op_rule in _UNSUPPORTED:
                raise ExpressionError(f"Unsupported construct: {_UNSUPPORTED[op_rule]}")
            op = _RULE_OPS[op_rule]
            left_tree = left_tree.children[0]
        left = self.build(left_tree, depth)
        right = self.build(right_tree, depth)
        return _binary(op, left, right)

    def _rule_conditionalor(self, children: list, depth: int) -> Node:
        return self._binary_chain(children, depth, "||")

    def _rule_conditionaland(self, children: list, depth: int) -> Node:
        return self._binary_chain(children, depth, "&&")

    _rule_relation = _binary_chain
    _rule_addition = _binary_chain
    _rule_multiplication = _binary_chain

    def _rule_unary(self, children: list, depth: int) -> Node:
        if len(children) == 1:
            return self.build(children[0], depth)
        op_tree, operand_tree = children
        operand = self.build(operand_tree, depth)
        if op_tree.data == "unary_neg":
            _expect(operand, Kind.NUMBER, "'-'")
            if isinstance(operand, Number):
                return Number(-operand.value)
            return Unary("-", operand)
        _expect(operand, Kind.BOOLEAN, "'!'")
        return Unary("!", operand)

    def _rule_ident(self, children: list, depth: int) -> Node:
        return Property(str(children[0]))

    def _rule_ident_arg(self, children: list, depth: int) -> Node:
        name = str(children[0])
        args = tuple(self.build(child, depth) for child in children[1].children) if len(children) > 1 else ()
        if name not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"Unknown function '{name}': allowed functions are {allowed}")
        arity = FUNCTIONS[name]
        if len(args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise ExpressionError(f"Function '{name}' takes {arity} {plural}, got {len(args)}")
        for arg in args:
            _expect(arg, Kind.NUMBER, f"the arguments of '{name}'")
        return Call(name, args)

    def _rule_literal(self, children: list, depth: int) -> Node:
        token: Token = children[0]
        kind, value = token.type, str(token.value)
        if kind == "BOOL_LIT":
            return Boolean(value == "true")
        if kind in ("INT_LIT", "UINT_LIT"):
            digits = value.rstrip("uU")
            negative = digits.startswith("-")
            digits = digits.lstrip("-")
            if len(digits) > MAX_INTEGER_DIGITS + 2:  # int() refuses more than 4,300 digits; the rule far fewer
                raise ExpressionError(f"Number {value[:20]}… {_OUT_OF_RANGE}")
            number = int(digits, 16) if digits.lower().startswith("0x") else int(digits)
            return _constant(Decimal(-number if negative else number))
        if kind == "FLOAT_LIT":
            try:
                number = Decimal(value)
            except InvalidOperation:  # pragma: no cover - the grammar only lets decimal literals through
                raise ExpressionError(f"Invalid number {value!r}") from None
            return _constant(number)
        if kind == "NULL_LIT":
            raise ExpressionError("Unsupported construct: null is not a number")
        raise ExpressionError("Unsupported construct: strings and bytes are not numbers")


_OUT_OF_RANGE = f"is out of range: constants follow the rule for stored numbers ({NUMBER_RULE})"


def _constant(number: Decimal) -> Number:
    if number_problem(number) is not None:
        shown = value if len(value := str(number)) <= 20 else value[:20] + "…"
        raise ExpressionError(f"Number {shown} {_OUT_OF_RANGE}")
    return Number(number)


# Every property a CEL expression reads is within the rule for stored numbers (metering.usage.numbers.cel_input
# excludes the event otherwise), and so is every constant. From that, each operator bounds how many digits its result
# can have before and after the point; an expression is refused when the worst case exceeds MAX_RESULT_DIGITS on
# either side. PostgreSQL's numeric holds 131,072 and 16,383 digits and pow() already stops near 1e1000, so a meter
# that compiles can never overflow a database on any event.
MAX_RESULT_DIGITS = 2000
_ROUNDED_PLACES = 20  # quotients, sqrt, log and pow are rounded to this many places (metering/usage/numbers.py)
_POW_DIGITS = 1000  # pow() results beyond e^2302 are an error for the event


def _digits(node: Node) -> tuple[int, int]:
    """(digits before, digits after the point) a number-valued node can reach at most; raises when too many."""
    if isinstance(node, Number):
        exponent = node.value.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return (max(node.value.adjusted() + 1, 0) if node.value else 0), places
    if isinstance(node, Property):
        return MAX_INTEGER_DIGITS, MAX_FRACTION_DIGITS
    if isinstance(node, Boolean):
        return 0, 0
    if isinstance(node, Unary):
        return _digits(node.operand)
    if isinstance(node, Conditional):
        _digits(node.condition)
        when_true, when_false = _digits(node.when_true), _digits(node.when_false)
        return max(when_true[0], when_false[0]), max(when_true[1], when_false[1])
    if isinstance(node, Binary):
        (left_int, left_places), (right_int, right_places) = _digits(node.left), _digits(node.right)
        if node.op in ("+", "-"):
            result = (max(left_int, right_int) + 1, max(left_places, right_places))
        elif node.op == "*":
            result = (left_int + right_int, left_places + right_places)
        elif node.op == "/":
            # the dividend is scaled by 10^21 before an integer division; the divisor can be as small as 10^-places
            result = (left_int + right_places + _ROUNDED_PLACES + 2, _ROUNDED_PLACES)
        else:
            return 0, 0  # comparisons and logic yield booleans
        return _within_bounds(result)
    if isinstance(node, Call):
        args = [_digits(arg) for arg in node.args]
        integer, places = max(a[0] for a in args), max(a[1] for a in args)
        if node.function in ("ceil", "floor", "round"):
            return integer + 1, 0
        if node.function == "sqrt":
            return integer // 2 + 1, _ROUNDED_PLACES
        if node.function == "log":
            return 5, _ROUNDED_PLACES
        if node.function == "pow":
            return _POW_DIGITS, _ROUNDED_PLACES
        return integer, places  # min, max, abs
    raise TypeError(f"unexpected node {node!r}")  # pragma: no cover - the AST is closed


def _within_bounds(digits: tuple[int, int]) -> tuple[int, int]:
    if max(digits) > MAX_RESULT_DIGITS:
        raise ExpressionError(
            f"Expression can produce numbers of more than {MAX_RESULT_DIGITS:,} digits (every property may hold up "
            f"to {MAX_INTEGER_DIGITS} digits before and after the point): use fewer multiplications"
        )
    return digits


def _binary(op: str, left: Node, right: Node) -> Node:
    if op in LOGICAL_OPS:
        _expect(left, Kind.BOOLEAN, f"'{op}'")
        _expect(right, Kind.BOOLEAN, f"'{op}'")
    else:
        _expect(left, Kind.NUMBER, f"'{op}'")
        _expect(right, Kind.NUMBER, f"'{op}'")
    return Binary(op, left, right)


def _kind(node: Node) -> Kind:
    if isinstance(node, Boolean):
        return Kind.BOOLEAN
    if isinstance(node, Unary):
        return Kind.BOOLEAN if node.op == "!" else Kind.NUMBER
    if isinstance(node, Binary):
        return Kind.NUMBER if node.op in ARITHMETIC_OPS else Kind.BOOLEAN
    return Kind.NUMBER


def _expect(node: Node, kind: Kind, where: str) -> None:
    if _kind(node) is not kind:
        raise ExpressionError(f"Type error: {where} needs a {kind.value}, got a {_kind(node).value}")


def _properties(node: Node):
    if isinstance(node, Property):
        yield node.name
    elif isinstance(node, Unary):
        yield from _properties(node.operand)
    elif isinstance(node, Binary):
        yield from _properties(node.left)
        yield from _properties(node.right)
    elif isinstance(node, Conditional):
        yield from _properties(node.condition)
        yield from _properties(node.when_true)
        yield from _properties(node.when_false)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from _properties(arg)

"""CEL meter expressions: what compiles, what is rejected and why (SPEC §5.6)."""

from decimal import Decimal

import pytest

from catalog.expressions import (
    Binary,
    Boolean,
    Call,
    Conditional,
    ExpressionError,
    Number,
    Property,
    Unary,
    compile_expression,
)


@pytest.mark.parametrize(
    ("text", "properties"),
    [
        ("input_tokens + output_tokens", {"input_tokens", "output_tokens"}),
        ("ceil(duration_ms / 1000)", {"duration_ms"}),
        ("duration <= 10 ? 0 : ceil(duration / 15) * 15", {"duration"}),
        ("min(a, b) + max(a, 2.5e3) - abs(c)", {"a", "b", "c"}),
        ("floor(x) + round(x) + sqrt(x) + log(x) + pow(x, 2)", {"x"}),
        ("a > 1 && b < 2 || !(c == 3) ? a : -b", {"a", "b", "c"}),
        ("a != 0 ? a : 0x10", {"a"}),
        ("true ? a : 1u", {"a"}),
    ],
)
def test_valid_expressions_compile_with_their_properties(text, properties):
    compiled = compile_expression(text)

    assert compiled.properties == frozenset(properties)
    assert compiled.text == text


def test_ast_shape_of_a_ternary():
    compiled = compile_expression("duration <= 10 ? 0 : ceil(duration / 15) * 15")

    assert compiled.root == Conditional(
        condition=Binary("<=", Property("duration"), Number(Decimal(10))),
        when_true=Number(Decimal(0)),
        when_false=Binary(
            "*",
            Call("ceil", (Binary("/", Property("duration"), Number(Decimal(15))),)),
            Number(Decimal(15)),
        ),
    )


def test_literals_keep_their_exact_decimal_value():
    compiled = compile_expression("a * 0.1 + 0x1F - -5 + 2.5e3")

    assert compiled.root == Binary(
        "+",
        Binary(
            "-",
            Binary("+", Binary("*", Property("a"), Number(Decimal("0.1"))), Number(Decimal(31))),
            Number(Decimal(-5)),
        ),
        Number(Decimal("2.5e3")),
    )


def test_unary_operators():
    assert compile_expression("-a").root == Unary("-", Property("a"))
    assert compile_expression("!(a > 1) ? 1 : a").root.condition == Unary(
        "!", Binary(">", Property("a"), Number(Decimal(1)))
    )
    assert compile_expression("false ? a : 2").root.condition == Boolean(False)


def test_compiled_expression_is_immutable():
    compiled = compile_expression("a + 1")

    with pytest.raises(AttributeError):
        compiled.text = "b"
    assert hash(compiled) == hash(compile_expression("a + 1"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a +", "Syntax error at line 1, column 3"),
        ("(a", "Syntax error"),
        ("", "empty"),
        ("   ", "empty"),
        ("1 + 2", "at least one event property"),
        ("ceil(1.5)", "at least one event property"),
        ("foo(a)", "Unknown function 'foo'"),
        ("size(a)", "Unknown function 'size'"),
        ("pow(a)", "Function 'pow' takes 2 arguments, got 1"),
        ("abs(a, b)", "Function 'abs' takes 1 argument, got 2"),
        ("min()", "Function 'min' takes 2 arguments, got 0"),
        ("a.b", "nested fields"),
        ("a[0]", "indexing"),
        ("a.size()", "method calls"),
        ("a % 2", "'%' operator"),
        ("a in [1, 2]", "'in' operator"),
        ("[a]", "lists"),
        ("{'k': a}", "maps"),
        ("a + 'x'", "strings"),
        ("a + null", "null"),
        ("a > 1", "must produce a number"),
        ("a && b", "needs a boolean"),
        ("!a", "needs a boolean"),
        ("-(a > 1)", "needs a number"),
        ("a ? 1 : 2", "condition of '?:'"),
        ("a > 1 ? a > 2 : 1", "branches of '?:'"),
        ("(a > 1) + 1", "needs a number"),
        ("abs(a > 1)", "arguments of 'abs'"),
        ("a" + " + a" * 1500, "longer than"),
    ],
)
def test_invalid_expressions_are_rejected_with_a_clear_message(text, message):
    with pytest.raises(ExpressionError) as excinfo:
        compile_expression(text)

    assert message in excinfo.value.message
    assert str(excinfo.value) == excinfo.value.message


def test_deep_nesting_is_rejected_not_crashing():
    with pytest.raises(ExpressionError):
        compile_expression("abs(" * 150 + "a" + ")" * 150)


def test_redundant_parentheses_do_not_count_as_nesting():
    assert compile_expression("(" * 300 + "a" + ")" * 300).root == Property("a")


def test_moderate_nesting_and_long_sums_compile():
    nested = "a"
    for _ in range(30):
        nested = f"max(({nested}), b)"
    assert compile_expression(nested).properties == {"a", "b"}
    assert compile_expression(" + ".join(f"p{i}" for i in range(90))).properties == {f"p{i}" for i in range(90)}

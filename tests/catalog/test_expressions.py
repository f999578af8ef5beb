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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("1e999999 * tokens", "1E+999999"),
        ("tokens * -1e999999", "-1E+999999"),
        ("tokens + 1e38", "1E+38"),
        ("tokens + 1e-39", "1E-39"),
        ("tokens * 123456789012345678901234567890123456789", "12345678901234567890…"),
        ("tokens * " + "9" * 1980, "99999999999999999999…"),
    ],
)
def test_constants_beyond_the_rule_for_stored_numbers_are_rejected(text, shown):
    with pytest.raises(ExpressionError) as excinfo:
        compile_expression(text)
    assert excinfo.value.message == (
        f"Number {shown} is out of range: constants follow the rule for stored numbers (numbers must be less than "
        "1e38 in magnitude with at most 38 digits after the decimal point)"
    )


def test_constants_at_the_edge_of_the_rule_compile():
    assert compile_expression("tokens * 9.9e37 + 1e-38").properties == {"tokens"}


def test_results_are_bounded_when_the_expression_is_compiled():
    # every property may hold 38 digits before the point: 52 factors reach 1,976 digits, 53 reach 2,014
    assert compile_expression(" * ".join(["t"] * 52)).properties == {"t"}
    with pytest.raises(ExpressionError) as excinfo:
        compile_expression(" * ".join(["t"] * 53))
    assert excinfo.value.message == (
        "Expression can produce numbers of more than 2,000 digits (every property may hold up to 38 digits before "
        "and after the point): use fewer multiplications"
    )
    # pow() stops near 1e1000 by itself; two of them multiplied stay within the bound, rounding resets the places
    assert compile_expression("pow(a, b) * pow(a, b)").properties == {"a", "b"}
    with pytest.raises(ExpressionError):
        compile_expression("pow(a, b) * pow(a, b) * 10")
    assert compile_expression("round(" + " * ".join(["t"] * 26) + ") * " + " * ".join(["t"] * 26))

"""CSV cells never run as spreadsheet formulas, numbers stay numbers, and escaping reads back exactly."""

import csv
import io

import pytest

from flexmeter.csv_cells import csv_cell_in, csv_cell_out, csv_writer

HOSTILE = ['=HYPERLINK("http://evil","x")', "@SUM(A1:A9)", "+1+1", "-2+3", "\t=1", "\r=1", "-", "+", "=", "@"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_starts_get_an_apostrophe(text):
    assert csv_cell_out(text) == "'" + text


@pytest.mark.parametrize("text", ["-5", "+1.5", "-0.25", "-2e3", "+.5", "-12345678901234567890.123456789"])
def test_plain_numbers_stay_numbers(text):
    assert csv_cell_out(text) == text


@pytest.mark.parametrize("value", ["plain", "", "a=b", "'quoted", "'", "x-1", 5, None])
def test_other_cells_are_untouched(value):
    assert csv_cell_out(value) == value


@pytest.mark.parametrize(
    "text", [*HOSTILE, "-5", "'=already escaped", "''", "'-", "'quoted", "'", "plain", "", "a=b", "'''=x"]
)
def test_every_cell_reads_back_as_written(text):
    assert csv_cell_in(csv_cell_out(text)) == text


def test_a_hand_made_apostrophe_is_kept_on_reading():
    assert csv_cell_in("'hello") == "'hello"
    assert csv_cell_in("'=x") == "=x"


def test_the_writer_escapes_every_cell_of_every_row():
    out = io.StringIO()
    writer = csv_writer(out, lineterminator="\n")
    writer.writerow(["name", "value"])
    writer.writerows([["=cmd|' /C calc'!A0", -5], ["@x", "-5"]])

    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["name", "value"],
        ["'=cmd|' /C calc'!A0", "-5"],
        ["'@x", "-5"],
    ]

"""The rows fields of catalog admin: rows in, the API's value out, and rule paths back to rows."""

import pytest
from django import forms

from catalog.admin_fields import MAX_POSTED_ROWS, FilterRowsField, MetadataRowsField


def posted(name, *items):
    data = {f"{name}-rows": str(len(items))}
    for index, item in enumerate(items):
        data.update({f"{name}-{index}-{column}": text for column, text in item.items()})
    return data


def test_filter_rows_become_the_apis_filter_list():
    field = FilterRowsField()
    rows = field.widget.value_from_datadict(
        posted(
            "filters",
            {"key": " region ", "operator": "in", "values": "eu-west\r\n  eu-central  \n\n"},
            {"key": "", "operator": "in", "values": "  "},
            {"key": "model", "operator": "", "values": "gpt-4"},
        ),
        {},
        "filters",
    )
    assert field.clean(rows) == [
        {"key": "region", "operator": "in", "values": ["eu-west", "eu-central"]},
        {"key": "model", "operator": "in", "values": ["gpt-4"]},
    ]
    assert field.positions(rows) == [0, 2]


def test_a_rule_path_names_the_row_it_came_from_after_blank_rows():
    field = FilterRowsField()
    rows = [{"key": "", "operator": "in", "values": ""}, {"key": "tier", "operator": "in", "values": ""}]
    assert field.row_error("filters[0].values", "must be a non-empty list of strings", rows) == (
        "Filter 2 (tier), values: must be a non-empty list of strings",
        (1, "values"),
    )
    assert field.row_error("filters[0].values[3]", "must be a string", rows) == (
        "Filter 2 (tier), value 4: must be a string",
        (1, "values"),
    )
    assert field.row_error("filters", "cannot remove filter 'r'", rows) == ("cannot remove filter 'r'", None)


def test_stored_filters_are_drawn_as_rows_one_value_per_line():
    field = FilterRowsField()
    stored = [{"key": "region", "operator": "not_in", "values": ["eu", "us"]}]
    assert field.prepare_value(stored) == [{"key": "region", "operator": "not_in", "values": "eu\nus"}]
    assert field.prepare_value(None) == []


@pytest.mark.parametrize("count", ["", "x", "-1", str(MAX_POSTED_ROWS + 50)])
def test_the_posted_row_count_is_bounded(count):
    rows = FilterRowsField().widget.value_from_datadict({"filters-rows": count}, {}, "filters")
    assert len(rows) == (MAX_POSTED_ROWS if count.isdigit() else 0)


def test_an_absent_rows_field_is_left_out_not_emptied():
    field = FilterRowsField()
    assert field.widget.value_from_datadict({}, {}, "filters") is None
    assert field.widget.value_omitted_from_data({}, {}, "filters")
    assert field.clean(None) is None


def test_metadata_rows_keep_text_as_typed_and_refuse_a_key_given_twice():
    field = MetadataRowsField()
    rows = [{"key": "team", "value": " Core "}, {"key": "", "value": ""}, {"key": "empty", "value": ""}]
    assert field.clean(rows) == {"team": " Core ", "empty": ""}
    with pytest.raises(forms.ValidationError) as refused:
        field.clean([{"key": "a", "value": "1"}, {"key": "a", "value": "2"}])
    assert refused.value.messages == ["Entry 2: the key “a” is already used by an earlier row"]
    assert field.row_error("metadata.team", "must be a string", rows) == ("Key “team”: must be a string", (0, "key"))
    assert field.prepare_value({"a": "1"}) == [{"key": "a", "value": "1"}]


def test_the_widget_draws_given_rows_then_blank_ones_with_names_per_row():
    html = FilterRowsField().widget.render("filters", [{"key": "r", "operator": "contains", "values": "e"}])
    assert 'name="filters-rows" value="3"' in html
    assert 'name="filters-2-key"' in html and 'name="filters-3-key"' not in html
    assert '<option value="contains" selected>contains</option>' in html
    assert 'aria-label="Filter 3 operator"' in html


def test_a_form_shown_again_does_not_pile_up_blank_rows():
    widget = FilterRowsField().widget
    shown_again = [
        {"key": "r", "operator": "in", "values": ""},
        {"key": "", "operator": "in", "values": ""},
        {"key": " ", "operator": "not_in", "values": "\n"},
    ]
    assert 'name="filters-rows" value="3"' in widget.render("filters", shown_again)

"""A template filled in: its variables in the body's order, checked against it, and the
text the user reads."""

from __future__ import annotations

import pytest

from db.models import MessageTemplate
from db.templates import FilledTemplate, TemplateVariablesError, fill_template, placeholders


def a_template(body: str) -> MessageTemplate:
    return MessageTemplate(provider="meta", name="welcome", language="en_US", body=body)


def test_variables_are_filled_in_the_order_they_first_appear() -> None:
    body = "Hi {{2}}! Order {{1}} for {{2}} is ready."
    filled = fill_template(a_template(body), ["Ada", "#42"])
    assert placeholders(body) == ["2", "1"]
    assert filled.variables == (("2", "Ada"), ("1", "#42"))
    assert filled.text == "Hi Ada! Order #42 for Ada is ready."
    assert FilledTemplate.from_json(filled.as_json()) == filled


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (["Ada"], "template 'welcome' takes 2 variable(s), got 1"),
        (["Ada", "  "], "variable 2 is empty"),
        (["Ada", "x" * 1025], "variable 2 is longer than 1024 characters"),
    ],
)
def test_values_that_do_not_fit_are_refused_with_the_reason(values: list[str], reason: str) -> None:
    with pytest.raises(TemplateVariablesError) as refused:
        fill_template(a_template("{{1}} and {{2}}"), values)
    assert str(refused.value) == reason

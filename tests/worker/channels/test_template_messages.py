"""Meta's `template` object: the variables as the body's text parameters, a named one
with its name, and no components for a template without variables."""

from __future__ import annotations

from db.models import MessageTemplate
from db.templates import fill_template
from worker.channels.meta_channel import template_message


def a_template(body: str) -> MessageTemplate:
    return MessageTemplate(provider="meta", name="welcome", language="en_US", body=body)


def test_named_variables_go_to_meta_with_their_names() -> None:
    filled = fill_template(a_template("Welcome, {{ first_name }}."), ["Ada"])
    assert filled.text == "Welcome, Ada."
    assert template_message(filled) == {
        "name": "welcome",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ada"}],
            }
        ],
    }
    assert template_message(fill_template(a_template("Hello!"), [])) == {
        "name": "welcome",
        "language": {"code": "en_US"},
    }

"""What the model writes in Markdown reaches WhatsApp in WhatsApp's formatting."""

from __future__ import annotations

import pytest

from worker.channels.formatting import markdown_to_whatsapp


@pytest.mark.parametrize(
    ("markdown", "whatsapp"),
    [
        ("**Fresh** bread and __rolls__", "*Fresh* bread and *rolls*"),
        ("an *italic* word and _another_", "an _italic_ word and _another_"),
        ("***both***", "*_both_*"),
        ("~~old~~ new", "~old~ new"),
        ("# Opening hours\n## Weekdays", "*Opening hours*\n*Weekdays*"),
        ("* rye\n+ spelt\n  * nested", "- rye\n- spelt\n  - nested"),
        (
            "See [our menu](https://bakery.example/menu).",
            "See our menu (https://bakery.example/menu).",
        ),
        ("[https://x.example](https://x.example)", "https://x.example"),
        ("![logo](https://x.example/logo.png)", "logo: https://x.example/logo.png"),
        ("![](https://x.example/logo.png)", "https://x.example/logo.png"),
        ("2 * 3 * 4 = 24", "2 * 3 * 4 = 24"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("Use `**kwargs` here", "Use `**kwargs` here"),
        ("```python\n# not a heading\nx = **y**\n```", "```\n# not a heading\nx = **y**\n```"),
        ("plain text", "plain text"),
    ],
)
def test_markdown_becomes_whatsapp_formatting(markdown: str, whatsapp: str) -> None:
    assert markdown_to_whatsapp(markdown) == whatsapp

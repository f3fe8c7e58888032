"""The SDK's copies of a run's input, made faster (`worker.agent.plain_copies`), are
the copies the SDK itself makes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import agents.util._json as sdk_json
import pytest
from agents.items import ItemHelpers

from worker.agent import plain_copies

WINDOW: list[Any] = [
    {"role": "user", "content": "Do you bake on Saturdays?"},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Yes, from 8:00.", "annotations": []}],
    },
    {"type": "function_call", "call_id": "call_1", "name": "current_time", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "2026-12-07 09:00"},
    {"role": "user", "content": [{"type": "input_text", "text": "ok"}], "score": 0.5},
    {"nested": [[1, 2.5, None, True], {"deep": {"deeper": ["x"]}}]},
]
ODD: list[Callable[[], Any]] = [
    lambda: ("a", "tuple"),
    lambda: OrderedDict(key=["value"]),
    lambda: MappingProxyType({"read": "only"}),
    lambda: {"a set": frozenset({1})},
    lambda: (n for n in range(3)),
    lambda: b"bytes",
    lambda: bytearray(b"raw"),
]
"""What the SDK copies in its own way (each made afresh: a copy consumes a generator)."""


def sdk_copy(value: Any) -> Any:
    """The SDK's own copy, its recursion its own too."""
    installed = sdk_json._to_dump_compatible_internal
    sdk_json._to_dump_compatible_internal = plain_copies._sdk_copy
    try:
        return sdk_json._to_dump_compatible(value)
    finally:
        sdk_json._to_dump_compatible_internal = installed


@pytest.mark.parametrize("make", [lambda: WINDOW, *ODD], ids=range(1 + len(ODD)))
def test_a_copy_is_the_one_the_sdk_makes(make: Callable[[], Any]) -> None:
    expected = sdk_copy(make())
    copied = plain_copies.plain_copy(make())
    assert copied == expected
    assert type(copied) is type(expected)


def test_a_copy_shares_no_list_or_dict_with_the_input() -> None:
    copied = plain_copies.plain_copy(WINDOW)
    copied[1]["content"][0]["text"] = "changed"
    copied[5]["nested"][0].append("more")
    assert WINDOW[1]["content"][0]["text"] == "Yes, from 8:00."
    assert WINDOW[5]["nested"][0] == [1, 2.5, None, True]


def test_the_sdk_copies_a_run_s_input_through_it_once_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Running an agent installs it; an SDK release that stops copying through this
    hook fails here instead of silently losing the speed."""
    import worker.conversation.agent_run  # noqa: F401  (installs it)

    assert sdk_json._to_dump_compatible_internal is plain_copies.plain_copy
    copied: list[Any] = []

    def seen(value: Any) -> Any:
        copied.append(value)
        return plain_copies.plain_copy(value)

    monkeypatch.setattr(sdk_json, "_to_dump_compatible_internal", seen)
    assert ItemHelpers.input_to_new_input_list(WINDOW) == WINDOW
    assert copied == [WINDOW]

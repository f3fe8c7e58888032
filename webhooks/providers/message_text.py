"""What the agent reads for a message that is not typed text, written as a person would
read it aloud: one bracketed line the dashboard also shows (see `db.transcript`).

Total over any JSON value: a field of an unexpected type is left out, never an error.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

HIDDEN_FORM_FIELDS = {"flow_token"}
"""Flow reply fields that are WhatsApp's bookkeeping, not something the user filled in."""


def location_text(latitude: Any, longitude: Any, name: Any, address: Any) -> str:
    """`[location: 52.30, 4.75, Microsoft, Evert van de Beekstraat 354]`, any provider."""
    parts = [str(part) for part in (latitude, longitude, name, address) if part]
    return f"[location: {inline(', '.join(parts))}]"


def order_text(order: dict[str, Any]) -> str:
    """A catalog order: each item's quantity, product, price and currency, the total when
    one currency, then the customer's note on a line of its own."""
    items = order.get("product_items")
    lines = []
    totals: dict[str, Decimal] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        quantity = item.get("quantity")
        price = _amount(item.get("item_price"))
        currency = inline(str(item.get("currency") or ""))
        product = inline(str(item.get("product_retailer_id") or "?"))
        line = f"{quantity if quantity is not None else '?'} × product {product}"
        if price is not None:
            line += f" at {price} {currency}".rstrip()
            count = _amount(quantity)
            if count is not None:
                totals[currency] = totals.get(currency, Decimal(0)) + count * price
        lines.append(line)
    catalog = order.get("catalog_id")
    heading = f"order from catalog {inline(str(catalog))}" if catalog else "order"
    summary = "; ".join(lines) or "no items"
    if len(totals) == 1 and len(lines) > 1:
        [(currency, total)] = totals.items()
        summary += f"; total {total} {currency}".rstrip()
    text = f"[{heading}: {summary}]"
    note = order.get("text")
    return f"{text}\nnote: {note}" if isinstance(note, str) and note.strip() else text


def form_text(response_json: Any) -> str:
    """A Flow reply: the fields the user filled in (`name: Ana, date: 2026-12-24`),
    nested ones by their path (`address.city: Lisbon`), lists joined with ` / `."""
    response = response_json
    if isinstance(response_json, str):
        try:
            response = json.loads(response_json)
        except ValueError:
            return f"[form submitted: {inline(response_json)}]"
    if not isinstance(response, dict):
        return f"[form submitted: {inline(_value(response))}]"
    fields = [
        f"{name}: {value}"
        for name, value in _fields(response, "")
        if name not in HIDDEN_FORM_FIELDS
    ]
    return f"[form submitted: {inline(', '.join(fields)) or 'no fields'}]"


def _fields(values: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    found = []
    for name, value in values.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            found.extend(_fields(value, f"{path}."))
        else:
            found.append((path, _value(value)))
    return found


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " / ".join(_value(each) for each in value)
    if isinstance(value, dict):
        return ", ".join(f"{name}: {text}" for name, text in _fields(value, ""))
    return "" if value is None else str(value)


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def inline(text: str) -> str:
    """`text` on one line without brackets, to go inside a placeholder's brackets."""
    return " ".join(text.replace("[", "(").replace("]", ")").split())

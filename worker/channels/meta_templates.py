"""A WhatsApp Business Account's message templates, read from the Graph API
(`GET /{waba-id}/message_templates`, followed page by page)."""

from __future__ import annotations

from typing import Any

import httpx

from db.templates import TemplateRow

PAGE_SIZE = 100
MAX_PAGES = 50
FIELDS = "name,language,status,components"


class TemplateListError(Exception):
    """The Graph API did not list the templates; the message says why."""


async def business_templates(
    *,
    business_account_id: str,
    access_token: str,
    api_base_url: str,
    api_version: str,
    timeout_seconds: float,
) -> list[TemplateRow]:
    """Every template of the account, with its body text (the `BODY` component)."""
    rows: list[TemplateRow] = []
    url: str | None = f"{api_base_url}/{api_version}/{business_account_id}/message_templates"
    params: dict[str, Any] | None = {"fields": FIELDS, "limit": PAGE_SIZE}
    headers = {"Authorization": f"Bearer {access_token}"}
    async with httpx.AsyncClient(timeout=timeout_seconds, headers=headers) as client:
        for _ in range(MAX_PAGES):
            if url is None:
                break
            try:
                response = await client.get(url, params=params)
            except httpx.HTTPError as unreachable:
                raise TemplateListError(f"Meta unreachable: {unreachable!r}") from unreachable
            payload = _json(response)
            if not response.is_success:
                error = payload.get("error") if isinstance(payload, dict) else None
                error = error if isinstance(error, dict) else {}
                raise TemplateListError(
                    f"Meta HTTP {response.status_code} (code {error.get('code')}): "
                    f"{error.get('message') or response.text[:200]}"
                )
            listed = payload.get("data") if isinstance(payload, dict) else None
            rows.extend(_row(each) for each in listed or [] if isinstance(each, dict))
            paging = payload.get("paging") if isinstance(payload, dict) else None
            url = paging.get("next") if isinstance(paging, dict) else None
            params = None  # the `next` link carries them, with the cursor
    return [row for row in rows if row.name and row.language]


def _row(listed: dict[str, Any]) -> TemplateRow:
    components = listed.get("components")
    body = next(
        (
            str(component.get("text", ""))
            for component in components or []
            if isinstance(component, dict) and str(component.get("type", "")).upper() == "BODY"
        ),
        "",
    )
    return TemplateRow(
        name=str(listed.get("name", "")),
        language=str(listed.get("language", "")),
        status=str(listed.get("status", "")).upper(),
        body=body,
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}

"""The URL a provider called, as the provider saw it (signatures are computed over it)."""

from __future__ import annotations

from starlette.requests import Request

from db.core.settings import Settings


def public_url(request: Request, settings: Settings) -> str:
    """`PUBLIC_BASE_URL` + path, else `X-Forwarded-Proto/Host` when trusted, else the URL
    this process received (right only when nothing rewrites it on the way in)."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if settings.public_base_url:
        return settings.public_base_url + path
    if settings.trust_proxy_headers:
        proto = _first(request.headers.get("x-forwarded-proto")) or request.url.scheme
        host = _first(request.headers.get("x-forwarded-host")) or request.url.netloc
        return f"{proto}://{host}{path}"
    return str(request.url)


def _first(header: str | None) -> str | None:
    """Proxies append to these headers; the first value is the client-facing one."""
    return header.split(",")[0].strip() if header else None

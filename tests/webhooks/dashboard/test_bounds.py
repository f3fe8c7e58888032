"""Bounded and total: every dashboard and API body is capped before anything parses it,
and values that used to crash a handler get a 4xx that says what was wrong."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

import httpx

from tests.webhooks.dashboard.conftest import World, browser_signed_in
from webhooks.dashboard.body_cap import MAX_DOCUMENT_BYTES

BIGGER_THAN_BIGINT = "99999999999999999999"


def raw_exchange(base_url: str, request: bytes) -> bytes:
    """Send `request` on a fresh socket and read what the server answers before closing;
    the server must answer without waiting for a body it was never sent."""
    address = urlsplit(base_url)
    assert address.hostname is not None and address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


async def test_values_that_crashed_handlers_get_a_4xx_with_a_reason(
    receiver: str, world: World
) -> None:
    builder, session = world.builder, world.session
    bearer = world.headers("builder")
    cases = [
        (f"/api/builders/{builder}/sessions?q=%00", 400, "q must not contain NUL (U+0000)"),
        (f"/builders/{builder}?q=a%00b", 400, "q must not contain NUL (U+0000)"),
        (
            f"/api/builders/{builder}/sessions?page={BIGGER_THAN_BIGINT}",
            400,
            "page must be between 1 and 184467440737095516",
        ),
        (
            f"/api/builders/{builder}/sessions?page=9223372036854775807",
            400,
            "page must be between 1 and 184467440737095516",
        ),
        (
            f"/builders/{builder}?page={BIGGER_THAN_BIGINT}",
            400,
            "page must be between 1 and 368934881474191032",
        ),
        (
            f"/api/sessions/{session}/items?after={BIGGER_THAN_BIGINT}",
            400,
            "after must be between -1 and 2147483647",
        ),
        (
            f"/sessions/{session}/updates?after={BIGGER_THAN_BIGINT}",
            400,
            "after must be between -1 and 2147483647",
        ),
        (
            f"/sessions/{session}/entries?before=-{BIGGER_THAN_BIGINT}",
            400,
            "before must be between 0 and 2147483647",
        ),
    ]
    async with httpx.AsyncClient(base_url=receiver, headers=bearer, timeout=30) as client:
        for path, status, reason in cases:
            response = await client.get(path)
            assert response.status_code == status, (path, response.text)
            assert reason in response.text, (path, response.text)
        nested = await client.post(f"/api/chat/{builder}", content=b"[" * 10_000)
        assert (nested.status_code, nested.json()) == (
            400,
            {"error": "the body's JSON is nested too deeply"},
        )
        reply = await client.post(f"/sessions/{session}/reply", data={"text": "hi\x00there"})
        assert reply.status_code == 400
        assert "the reply contains a NUL character (U+0000)" in reply.text


async def test_a_non_ascii_csrf_token_is_a_wrong_one(receiver: str, world: World) -> None:
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as browser:
        await browser.get("/login")
        login = await browser.post(
            "/login",
            content=b"token=x&csrf_token=%C3%A9",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert login.status_code == 403
        assert "the form&#39;s CSRF token is missing or wrong" in login.text
        await browser_signed_in(browser, world.token)
        chat = await browser.post(
            f"/api/chat/{world.builder}",
            json={"conversation_id": "c", "message": "hi"},
            headers={"X-CSRF-Token": "é".encode()},
        )
        assert (chat.status_code, chat.json()) == (
            403,
            {"error": "missing or wrong X-CSRF-Token header"},
        )


async def test_bodies_over_64_kib_are_refused_before_they_are_parsed(
    receiver: str, world: World
) -> None:
    many_fields = "&".join(f"f{number}={'x' * 100}" for number in range(999))
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
        login = await client.post(
            "/login",
            content=many_fields,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        reply = await client.post(
            f"/sessions/{world.session}/reply",
            data={"text": "x" * 70_000},
            headers=world.headers("builder"),
        )
        upload = await client.post(
            f"/sessions/{world.session}/reply",
            files={"text": ("a.txt", b"hello")},
            headers=world.headers("builder"),
        )
        api_upload = await client.post(
            f"/api/chat/{world.builder}", files={"message": ("a.txt", b"hello")}
        )
    assert login.status_code == 413 and "request body exceeds 65536 bytes" in login.text
    assert reply.status_code == 413 and "request body exceeds 65536 bytes" in reply.text
    assert upload.status_code == 415
    assert "multipart bodies are accepted only by the document upload" in upload.text
    assert (api_upload.status_code, api_upload.json()) == (
        415,
        {"error": "multipart bodies are accepted only by the document upload"},
    )


def test_a_huge_declared_body_is_refused_without_reading_it(receiver: str) -> None:
    """No byte of the announced gigabyte is sent: the answer comes from the headers alone."""
    host = urlsplit(receiver).netloc
    form = raw_exchange(
        receiver,
        f"POST /login HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 1073741824\r\n\r\n".encode(),
    )
    upload = raw_exchange(
        receiver,
        f"POST /login HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        "Content-Length: 1073741824\r\n\r\n".encode(),
    )
    document = raw_exchange(
        receiver,
        f"POST /builders/{uuid.uuid4()}/documents HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        "Content-Length: 1073741824\r\n\r\n".encode(),
    )
    assert form.startswith(b"HTTP/1.1 413 ")
    assert upload.startswith(b"HTTP/1.1 415 ")
    assert document.startswith(b"HTTP/1.1 413 ")


async def test_only_the_document_upload_takes_files_and_up_to_its_own_cap(
    receiver: str, world: World
) -> None:
    upload = f"/builders/{world.builder}/documents"
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
        too_big = await client.post(
            upload,
            files={"file": ("big.txt", b"x" * (MAX_DOCUMENT_BYTES + 1))},
            headers=world.headers("builder"),
        )
        form_too_big = await client.post(
            upload, data={"name": "x" * 70_000}, headers=world.headers("builder")
        )
        fits = await client.post(
            upload,
            files={"file": ("hours.txt", b"Open every day from 8 until 18.")},
            headers=world.headers("builder"),
        )
        other_route = await client.post(
            f"/builders/{world.builder}/tokens",
            files={"name": ("a.txt", b"hello")},
            headers=world.headers("builder"),
        )
    assert too_big.status_code == 413
    assert f"request body exceeds {MAX_DOCUMENT_BYTES} bytes" in too_big.text
    assert form_too_big.status_code == 413
    assert fits.status_code == 303, fits.text
    assert other_route.status_code == 415


def test_a_chunked_body_is_cut_off_at_the_cap(receiver: str) -> None:
    """Without a Content-Length, reading stops once 64 KiB have arrived."""
    host = urlsplit(receiver).netloc
    chunk = b"x" * 70_000
    answer = raw_exchange(
        receiver,
        f"POST /login HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + f"{len(chunk):x}\r\n".encode()
        + chunk
        + b"\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ")

"""`MetaChannel` talks to the Graph API (a fake on loopback) and classifies its errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from db.offered_options import OfferedOptions
from tests.fakes.meta import ACCESS_TOKEN, API_VERSION, Failure, FakeGraphAPI
from tests.fakes.server import free_port
from worker.channels.base import PermanentSendError, TransientSendError
from worker.channels.meta_channel import MetaChannel
from worker.conversation.delivery import send_with_retries

PHONE_NUMBER_ID = "106540352242922"


@pytest.fixture
async def meta(fake_graph_server: tuple[FakeGraphAPI, str]) -> AsyncIterator[MetaChannel]:
    channel = MetaChannel(
        access_token=ACCESS_TOKEN,
        api_base_url=fake_graph_server[1],
        api_version=API_VERSION,
        timeout=0.5,
        typing_indicator=True,
        status_wait_seconds=1,
    )
    yield channel
    await channel.aclose()


async def test_sends_text_to_a_number(meta: MetaChannel, fake_graph: FakeGraphAPI) -> None:
    sent = await meta.send(sender=PHONE_NUMBER_ID, recipient="16505551234", text="Hi *there*")
    [request] = fake_graph.messages
    assert request["phone_number_id"] == PHONE_NUMBER_ID
    assert {
        k: request[k] for k in ("messaging_product", "recipient_type", "to", "type", "text")
    } == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "Hi *there*"},
    }
    assert (sent.provider_message_id, sent.status) == (request["id"], "sent")


async def test_a_user_known_only_by_user_id_is_the_recipient(
    meta: MetaChannel, fake_graph: FakeGraphAPI
) -> None:
    await meta.send(sender=PHONE_NUMBER_ID, recipient="US.13491208655302741918", text="Hi")
    [request] = fake_graph.messages
    assert request["recipient"] == "US.13491208655302741918" and "to" not in request


async def test_typing_indicator_marks_the_message_read(
    meta: MetaChannel, fake_graph: FakeGraphAPI
) -> None:
    await meta.show_typing(sender=PHONE_NUMBER_ID, message_id="wamid.IN")
    assert fake_graph.typing == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.IN",
            "typing_indicator": {"type": "text"},
            "phone_number_id": PHONE_NUMBER_ID,
        }
    ]


@pytest.mark.parametrize(
    ("failure", "error", "retry_after"),
    [
        (Failure(429, 130429, {"Retry-After": "2"}), TransientSendError, 2.0),
        (Failure(400, 131056), TransientSendError, 6.0),
        (Failure(400, 80007), TransientSendError, None),
        (Failure(503, 131016), TransientSendError, None),
        (Failure(400, 131047), PermanentSendError, None),
        (Failure(400, 131026), PermanentSendError, None),
        (Failure(401, 190), PermanentSendError, None),
    ],
)
async def test_errors_are_classified_by_code(
    meta: MetaChannel,
    fake_graph: FakeGraphAPI,
    failure: Failure,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    fake_graph.failures.append(failure)
    with pytest.raises(error, match=f"code {failure.code}") as raised:
        await meta.send(sender=PHONE_NUMBER_ID, recipient="16505551234", text="Hi")
    if isinstance(raised.value, TransientSendError):
        assert raised.value.retry_after == retry_after


async def test_a_slow_graph_api_is_a_timeout_that_may_have_sent(
    meta: MetaChannel, fake_graph: FakeGraphAPI
) -> None:
    fake_graph.delay_seconds = 2
    with pytest.raises(TransientSendError, match="did not answer") as raised:
        await meta.send(sender=PHONE_NUMBER_ID, recipient="16505551234", text="Hi")
    assert raised.value.may_have_been_sent


async def test_an_unreachable_graph_api_has_sent_nothing() -> None:
    channel = MetaChannel(
        access_token=ACCESS_TOKEN,
        api_base_url=f"http://127.0.0.1:{free_port()}",
        api_version=API_VERSION,
        timeout=0.5,
        typing_indicator=False,
        status_wait_seconds=1,
    )
    try:
        with pytest.raises(TransientSendError, match="unreachable") as raised:
            await channel.send(sender=PHONE_NUMBER_ID, recipient="16505551234", text="Hi")
    finally:
        await channel.aclose()
    assert not raised.value.may_have_been_sent


async def test_the_outbound_id_rides_along_as_callback_data(
    meta: MetaChannel, fake_graph: FakeGraphAPI
) -> None:
    outbound_id = uuid.uuid4()
    await meta.send(
        sender=PHONE_NUMBER_ID, recipient="16505551234", text="Hi", outbound_id=outbound_id
    )
    [sent] = fake_graph.messages
    assert sent["biz_opaque_callback_data"] == str(outbound_id)


async def test_a_rate_limit_then_success_delivers_once(
    meta: MetaChannel, fake_graph: FakeGraphAPI
) -> None:
    fake_graph.failures.append(Failure(429, 130429))
    sent = await send_with_retries(meta, sender=PHONE_NUMBER_ID, recipient="1", text="Hi")
    assert [m["id"] for m in fake_graph.messages] == [sent.provider_message_id]


async def test_options_that_fit_no_interactive_message_go_as_numbered_text(
    meta: MetaChannel, fake_graph: FakeGraphAPI
) -> None:
    eleven = OfferedOptions(tuple(f"Slot {n}" for n in range(1, 12)))
    alike = OfferedOptions(
        ("Tomorrow morning at the bakery, 9:00", "Tomorrow morning at the bakery, 10:00")
    )
    for options in (eleven, alike):
        await meta.send(
            sender=PHONE_NUMBER_ID, recipient="16505551234", text="When?", options=options
        )
    bodies = [request["text"]["body"] for request in fake_graph.messages]
    assert bodies[0].startswith("When?\n\n1. Slot 1\n2. Slot 2\n")
    assert bodies[0].endswith("\n10. Slot 10\n11. Slot 11")
    assert bodies[1] == (
        "When?\n\n1. Tomorrow morning at the bakery, 9:00\n2. Tomorrow morning at the bakery, 10:00"
    )
    assert meta.options_text_length(eleven) == 4096 - len(bodies[0]) + len("When?")
    assert meta.options_text_length(OfferedOptions(("Yes", "No"))) == 1024

"""`TwilioChannel` sends through twilio's real `Client` and classifies failures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from twilio.rest import Client

from db.media_links import MediaLinks, link_signature
from db.offered_options import OfferedOptions
from tests.fakes.server import free_port
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from worker.channels.base import PermanentSendError, TransientSendError, VoiceNote
from worker.channels.twilio_channel import TwilioChannel, TwilioHttpClient


@pytest.fixture
async def channel_to(fake_twilio_server: tuple[FakeTwilio, str]) -> AsyncIterator[TwilioChannel]:
    """A channel pointed at the fake Twilio (built on the running loop, as aiohttp needs)."""
    channel = TwilioChannel(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        timeout=0.5,
        api_base_url=fake_twilio_server[1],
        status_callback="https://hooks.example.com/webhooks/twilio/status",
    )
    yield channel
    await channel.aclose()


async def test_sends_a_whatsapp_message_with_a_status_callback(
    channel_to: TwilioChannel, fake_twilio: FakeTwilio
) -> None:
    sent = await channel_to.send(
        sender="whatsapp:+14155238886", recipient="whatsapp:+31612345678", text="Hi!"
    )
    [request] = fake_twilio.messages
    assert (request["From"], request["To"], request["Body"]) == (
        "whatsapp:+14155238886",
        "whatsapp:+31612345678",
        "Hi!",
    )
    assert request["StatusCallback"] == "https://hooks.example.com/webhooks/twilio/status"
    assert (sent.provider_message_id, sent.status) == (request["sid"], "queued")


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ((429, 20429), TransientSendError),
        ((500, 20500), TransientSendError),
        ((400, 63016), PermanentSendError),
        ((404, 20404), PermanentSendError),
    ],
)
async def test_failures_are_classified_by_status(
    channel_to: TwilioChannel,
    fake_twilio: FakeTwilio,
    failure: tuple[int, int],
    error: type[Exception],
) -> None:
    fake_twilio.failures.append(failure)
    with pytest.raises(error, match=f"code {failure[1]}"):
        await channel_to.send(sender="whatsapp:+1", recipient="whatsapp:+2", text="Hi")


async def test_a_slow_twilio_is_a_timeout_that_may_have_sent(
    channel_to: TwilioChannel, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.delay_seconds = 2
    with pytest.raises(TransientSendError, match="did not answer") as raised:
        await channel_to.send(sender="whatsapp:+1", recipient="whatsapp:+2", text="Hi")
    assert raised.value.may_have_been_sent


async def test_an_unreachable_twilio_has_sent_nothing() -> None:
    channel = TwilioChannel(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        timeout=0.5,
        api_base_url=f"http://127.0.0.1:{free_port()}",
    )
    try:
        with pytest.raises(TransientSendError, match="unreachable") as raised:
            await channel.send(sender="whatsapp:+1", recipient="whatsapp:+2", text="Hi")
    finally:
        await channel.aclose()
    assert not raised.value.may_have_been_sent


async def test_finds_what_it_sent_to_one_user_with_the_same_text_since_a_moment(
    channel_to: TwilioChannel, fake_twilio: FakeTwilio
) -> None:
    bot, user = "whatsapp:+14155238886", "whatsapp:+31612345678"
    await channel_to.send(sender=bot, recipient=user, text="Earlier")
    since = datetime.now(UTC).replace(microsecond=0)
    first = await channel_to.send(sender=bot, recipient=user, text="Hi!")
    await channel_to.send(sender=bot, recipient=user, text="Something else")
    await channel_to.send(sender=bot, recipient="whatsapp:+31600000000", text="Hi!")
    second = await channel_to.send(sender=bot, recipient=user, text="Hi!")

    found = await channel_to.find_sent(sender=bot, recipient=user, text="Hi!", since=since)

    assert [each.provider_message_id for each in found] == [
        first.provider_message_id,
        second.provider_message_id,
    ]
    assert (
        await channel_to.find_sent(
            sender=bot, recipient=user, text="Hi!", since=since + timedelta(days=1)
        )
        == []
    )


async def test_a_messages_list_twilio_cannot_serve_now_is_transient(
    channel_to: TwilioChannel, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.list_failures.append((503, 20503))
    with pytest.raises(TransientSendError, match="503"):
        await channel_to.find_sent(
            sender="whatsapp:+1", recipient="whatsapp:+2", text="Hi", since=datetime.now(UTC)
        )


async def test_twilio_s_own_client_pages_through_the_fake_messages_list(
    fake_twilio_server: tuple[FakeTwilio, str], fake_twilio: FakeTwilio
) -> None:
    http = TwilioHttpClient(timeout=5, api_base_url=fake_twilio_server[1])
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    try:
        for n in range(5):
            await client.messages.create_async(from_="whatsapp:+1", to="whatsapp:+2", body=f"{n}")
        today = datetime.now(UTC).date()
        listed = await client.messages.list_async(
            to="whatsapp:+2", date_sent_after=f"{today:%Y-%m-%d}", page_size=2
        )
        tomorrow = await client.messages.list_async(
            date_sent_after=f"{today + timedelta(days=1):%Y-%m-%d}"
        )
    finally:
        await http.close()
    assert [message.body for message in listed] == ["4", "3", "2", "1", "0"]
    assert tomorrow == []


async def test_options_are_numbered_under_the_text_and_found_so(
    channel_to: TwilioChannel, fake_twilio: FakeTwilio
) -> None:
    bot, user = "whatsapp:+14155238886", "whatsapp:+31612345678"
    options = OfferedOptions(("Today 15:00", "Tomorrow 10:00"))
    since = datetime.now(UTC) - timedelta(minutes=1)
    sent = await channel_to.send(sender=bot, recipient=user, text="When?", options=options)

    [request] = fake_twilio.messages
    assert request["Body"] == "When?\n\n1. Today 15:00\n2. Tomorrow 10:00"
    found = await channel_to.find_sent(
        sender=bot, recipient=user, text="When?", since=since, options=options
    )
    assert [each.provider_message_id for each in found] == [sent.provider_message_id]
    assert await channel_to.find_sent(sender=bot, recipient=user, text="When?", since=since) == []


async def test_a_voice_note_goes_alone_as_a_signed_link_and_is_found_as_one(
    fake_twilio_server: tuple[FakeTwilio, str], fake_twilio: FakeTwilio
) -> None:
    """Without links to sign the channel sends no voice notes; with them, the `MediaUrl`
    is the receiver's signed link and the message carries no text."""
    base_url = fake_twilio_server[1]
    links = MediaLinks(base_url, "test-media-link-secret-0123456789", 60)
    channel = TwilioChannel(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        timeout=0.5,
        api_base_url=base_url,
        media_links=links,
    )
    bot, user = "whatsapp:+14155238886", "whatsapp:+31612345678"
    since = datetime.now(UTC) - timedelta(minutes=1)
    voice = VoiceNote(media_id=uuid.uuid4(), content=b"OggS", content_type="audio/ogg")
    try:
        assert channel.sends_voice
        await channel.send(sender=bot, recipient=user, text="Earlier")
        sent = await channel.send(sender=bot, recipient=user, text="Hello", voice=voice)
        found = await channel.find_sent(
            sender=bot, recipient=user, text="Hello", since=since, voice=True
        )
        as_text = await channel.find_sent(sender=bot, recipient=user, text="Hello", since=since)
    finally:
        await channel.aclose()

    request = fake_twilio.messages[-1]
    assert "Body" not in request
    path, _, query = request["MediaUrl"].partition("?")
    assert path == f"{base_url}/media/replies/{voice.media_id}"
    expires = int(query.split("&")[0].removeprefix("expires="))
    assert query == f"expires={expires}&signature=" + link_signature(
        voice.media_id, expires, secret=links.secret
    )
    assert [each.provider_message_id for each in found] == [sent.provider_message_id]
    assert as_text == []
    unlinked = TwilioChannel(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, timeout=0.5)
    assert not unlinked.sends_voice
    await unlinked.aclose()

"""`TwilioChannel` sends through twilio's real `Client` and classifies failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from worker.channels.base import PermanentSendError, TransientSendError
from worker.channels.twilio import TwilioChannel


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


async def test_a_slow_twilio_is_a_transient_timeout(
    channel_to: TwilioChannel, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.delay_seconds = 2
    with pytest.raises(TransientSendError, match="unreachable"):
        await channel_to.send(sender="whatsapp:+1", recipient="whatsapp:+2", text="Hi")

"""Media are kept once, for their conversation: a second attempt does not fetch again,
deleting the conversation deletes them, and the sweeper forgets them after
`MEDIA_RETENTION_DAYS`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import create_engine, create_sessionmaker
from db.media import LARGE_FILE_BYTES, DatabaseContentStore, media_for
from db.models import AgentSessionRow, Channel, Media
from tests.factories import FIXTURES, arrive
from tests.fakes.server import free_port
from tests.fakes.twilio import FakeTwilio
from worker.conversation.inbound import process_inbound
from worker.media.fetching import AllowedHosts, MediaUnreadable
from worker.process.runtime import Runtime
from worker.process.sweeper import forget_old_media

PHOTO = (FIXTURES / "media" / "photo.jpg").read_bytes()


async def a_kept_photo(
    sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
    twilio_url: str,
) -> Media:
    url = fake_twilio.add_media(twilio_url, PHOTO, "image/jpeg")
    media = [{"url": url, "content_type": "image/jpeg"}]
    await process_inbound(await arrive(sessions, channel, "Look", media), runtime=runtime)
    async with sessions() as db:
        return (await db.scalars(select(Media))).one()


async def media_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(Media)) or 0)


async def test_a_photo_is_kept_once_with_its_bytes_for_its_conversation(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
    fake_twilio_server: tuple[FakeTwilio, str],
) -> None:
    kept = await a_kept_photo(db_sessions, channel, runtime, fake_twilio, fake_twilio_server[1])
    assert kept.inbound_message_id is not None
    async with db_sessions() as db:
        assert await DatabaseContentStore().get(kept.id, db=db) == PHOTO
        [info] = await media_for([kept.inbound_message_id], [], db=db)
    assert (info.kind, info.content_type, info.size_bytes) == ("image", "image/jpeg", len(PHOTO))
    assert info.reference == f"wabot-media:{kept.id}"
    assert len(fake_twilio.media_requests) == 1

    async with db_sessions.begin() as db:
        await db.execute(delete(AgentSessionRow).where(AgentSessionRow.id == kept.session_id))
    assert await media_count(db_sessions) == 0


async def test_a_connection_that_carried_a_large_file_is_not_kept_in_the_pool(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
    fake_twilio_server: tuple[FakeTwilio, str],
    database_url: str,
) -> None:
    """libpq keeps a connection's buffers as large as the largest value it carried: the
    one that stored or read a file over a megabyte is closed, not pooled, after it."""
    kept = await a_kept_photo(db_sessions, channel, runtime, fake_twilio, fake_twilio_server[1])
    large = PHOTO * (LARGE_FILE_BYTES // len(PHOTO) + 1)
    engine = create_engine(database_url, pool_size=1)
    sessions = create_sessionmaker(engine)
    store = DatabaseContentStore()

    async def backend_of(content: bytes | None) -> int:
        """The Postgres backend of a unit of work that stores `content`, or reads it."""
        async with sessions.begin() as db:
            backend = int(await db.scalar(text("SELECT pg_backend_pid()")) or 0)
            if content is None:
                assert await store.get(kept.id, db=db) == large
            else:
                await store.put(kept.id, content, db=db)
        return backend

    try:
        small_write = await backend_of(PHOTO)
        large_write = await backend_of(large)
        large_read = await backend_of(None)
        after = await backend_of(PHOTO)
        again = await backend_of(PHOTO)
    finally:
        await engine.dispose()
    assert small_write == large_write, "a small file keeps its connection"
    assert large_read != large_write and after != large_read
    assert again == after


async def test_the_sweeper_forgets_media_past_their_retention(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
    fake_twilio_server: tuple[FakeTwilio, str],
) -> None:
    kept = await a_kept_photo(db_sessions, channel, runtime, fake_twilio, fake_twilio_server[1])
    assert runtime.settings.media_retention_days == 30
    assert await forget_old_media(runtime) == 0
    async with db_sessions.begin() as db:
        await db.execute(
            update(Media)
            .where(Media.id == kept.id)
            .values(created_at=datetime.now(UTC) - timedelta(days=31))
        )
    assert await forget_old_media(runtime) == 1
    assert await media_count(db_sessions) == 0


async def test_a_file_over_its_cap_is_refused_while_it_streams(
    runtime: Runtime, fake_twilio: FakeTwilio, fake_twilio_server: tuple[FakeTwilio, str]
) -> None:
    url = fake_twilio.add_media(fake_twilio_server[1], PHOTO, "image/jpeg")
    auth = (runtime.settings.twilio_account_sid or "", "test-auth-token")
    fetcher = runtime.media_fetcher
    try:
        await fetcher.twilio(url, auth=auth, content_type="image/jpeg", cap=len(PHOTO) - 1)
    except MediaUnreadable as error:
        assert str(error) == "too large"
    else:
        raise AssertionError("a file over its cap was fetched")
    fetched = await fetcher.twilio(url, auth=auth, content_type="image/jpeg", cap=len(PHOTO))
    assert fetched.content == PHOTO


def test_only_the_providers_hosts_are_allowed() -> None:
    hosts = AllowedHosts.for_provider(
        "https://api.twilio.com", "media.twiliocdn.com,*.twiliocdn.com,localhost:8080"
    )
    assert hosts.allow("https://api.twilio.com/2010-04-01/Accounts/AC1/Media/ME1")
    assert hosts.allow("https://media.twiliocdn.com/x")
    assert hosts.allow("https://eu1.twiliocdn.com/x")
    assert hosts.allow("http://localhost:8080/cdn/ME1")
    for refused in (
        "http://api.twilio.com/x",  # not HTTPS
        "https://api.twilio.com:8443/x",  # another port
        "https://api.twilio.com.evil.example/x",
        "https://twiliocdn.com.evil.example/x",
        f"http://127.0.0.1:{free_port()}/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8081/cdn/ME1",
        "file:///etc/passwd",
    ):
        assert not hosts.allow(refused), refused

"""A conversation page's live update (`db.live_updates`), one statement on Postgres and on
the embedded SQLite: what it reads for the signed-in, and nothing for anyone else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import create_sessionmaker
from db.live_updates import LiveUpdate, live_update
from db.models import AgentSessionRow, InboundMessage, OutboundMessage, Turn
from db.sign_ins import SignedIn, SignInSecret, start_sign_in
from db.tokens import create_token
from tests.factories import builder_with_channel, stored_session


@pytest.fixture(params=["postgres", "sqlite"])
def both(
    request: pytest.FixtureRequest,
    db_sessions: async_sessionmaker[AsyncSession],
    sqlite_engine: AsyncEngine,
) -> async_sessionmaker[AsyncSession]:
    return db_sessions if request.param == "postgres" else create_sessionmaker(sqlite_engine)


async def test_a_live_update_reads_what_is_new_for_whoever_may_see_it(
    both: async_sessionmaker[AsyncSession],
) -> None:
    owner = await builder_with_channel(
        both, address=f"whatsapp:+1415{uuid.uuid4().int % 10**7:07d}"
    )
    stranger = await builder_with_channel(
        both, address=f"whatsapp:+1415{uuid.uuid4().int % 10**7:07d}"
    )
    session_id = await stored_session(
        both,
        owner,
        [
            {"role": "user", "content": "Do you have rye?"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "We do."}]},
        ],
        external_id=f"+3161{uuid.uuid4().int % 10**7:07d}",
    )
    turn_id = uuid.uuid4()
    async with both.begin() as db:
        token = await create_token(owner, name="dashboard", db=db)
        secret = await start_sign_in(
            SignedIn(builder_id=owner, token_id=token.id),
            admin_key=None,
            lifetime_seconds=600,
            db=db,
        )
        db.add(
            Turn(
                id=turn_id,
                session_id=session_id,
                status="replied",
                attempts=1,
                input_sequence=0,
                input_saved_at=datetime.now(UTC),
            )
        )
        await db.flush()
        db.add(
            OutboundMessage(
                session_id=session_id,
                turn_id=turn_id,
                part=0,
                recipient="whatsapp:+31612345678",
                text="We do.",
                status="delivered",
            )
        )
        db.add(
            InboundMessage(
                provider="twilio",
                provider_message_id=f"SM{uuid.uuid4().hex}",
                recipient="whatsapp:+14155238886",
                sender="whatsapp:+31612345678",
                text="And spelt?",
                media=[],
                payload={"Body": "And spelt?"},
                status="pending",
                session_id=session_id,
            )
        )

    async def read(asker: SignInSecret | SignedIn, after: int) -> LiveUpdate | None:
        async with both.begin() as db:
            return await live_update(session_id, asker=asker, after=after, limit=50, db=db)

    async def seen_at() -> datetime | None:
        async with both() as db:
            row = await db.get(AgentSessionRow, session_id)
            assert row is not None
            return row.operator_seen_at

    signed_in = SignInSecret(secret, admin_key=None)
    everything = await read(signed_in, -1)
    assert everything is not None and everything.session is not None
    assert (everything.session.id, everything.latest_status) == (session_id, "replied")
    assert [item.item_data["role"] for item in everything.items] == ["user", "assistant"]
    assert [turn.id for turn in everything.turns] == [turn_id]
    assert [(part.text, part.status) for part in everything.replies] == [("We do.", "delivered")]
    assert everything.waiting[0].text == "And spelt?"
    assert everything.waiting[0].payload == {"Body": "And spelt?"}
    assert everything.items[0].created_at.tzinfo is not None
    assert await seen_at() is not None

    async with both.begin() as db:
        row = await db.get(AgentSessionRow, session_id)
        assert row is not None
        row.operator_seen_at = None
    nothing_new = await read(signed_in, 1)
    assert nothing_new is not None
    assert (nothing_new.items, nothing_new.turns, nothing_new.replies, nothing_new.files) == (
        [],
        [],
        [],
        [],
    )
    assert [message.text for message in nothing_new.waiting] == ["And spelt?"]
    assert await seen_at() is None  # nothing new shown: nothing seen

    assert await read(SignInSecret("not a sign-in", admin_key=None), -1) is None
    other = await read(SignedIn(builder_id=stranger, token_id=None), -1)
    assert other is not None
    assert (other.session, other.items, other.waiting) == (None, [], [])
    admin = await read(SignedIn(builder_id=None, token_id=None), 1)
    assert admin is not None and admin.session is not None

"""The offline model answers from the history the runner loads from our session."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import pytest
from agents import Runner
from sqlalchemy.ext.asyncio import AsyncEngine

from db.agent_session import DatabaseSession
from db.builders import create_builder
from db.document_store import replace_document
from db.engine import create_engine, create_sessionmaker
from db.models import Builder
from db.offered_options import OfferedOptions
from db.sessions import get_or_create_session
from tests.factories import FIXTURES
from worker.agent.builder_agent import TurnContext, build_agent
from worker.agent.choices import Reply
from worker.agent.offline_model import DEMO_TIMES, OfflineModel, offline_output


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


async def new_conversation(engine: AsyncEngine) -> tuple[Builder, DatabaseSession]:
    async with create_sessionmaker(engine).begin() as db:
        builder = await create_builder(name="Bakery", instructions="Be kind.", model="m", db=db)
        session_id = await get_or_create_session(builder.id, "whatsapp", uuid.uuid4().hex, db=db)
    return builder, DatabaseSession(session_id, engine=engine)


async def ask(builder: Builder, session: DatabaseSession, text: str, engine: AsyncEngine) -> str:
    """One turn; the builder's documents are searched on `engine`."""
    agent = build_agent(builder, OfflineModel())
    sessions = create_sessionmaker(engine)
    context = TurnContext(builder.id, uuid.UUID(session.session_id), sessions=sessions)
    result = await Runner.run(agent, text, session=session, context=context, max_turns=8)
    return str(result.final_output)


async def test_it_remembers_a_name_only_through_the_session(sqlite_engine: AsyncEngine) -> None:
    builder, session = await new_conversation(sqlite_engine)
    _, stranger = await new_conversation(sqlite_engine)
    assert await ask(builder, session, "Hi, my name is Grace.", sqlite_engine) == (
        "Nice to meet you, Grace! I'm the offline demo model."
    )
    assert await ask(builder, session, "What's my name?", sqlite_engine) == "Your name is Grace."
    assert (
        await ask(builder, stranger, "What's my name?", sqlite_engine)
        == "You haven't told me your name yet."
    )


async def test_it_uses_the_time_tool_and_the_result_is_stored(sqlite_engine: AsyncEngine) -> None:
    builder, session = await new_conversation(sqlite_engine)
    answer = await ask(builder, session, "What time is it?", sqlite_engine)
    items = await session.get_items()
    assert [item.get("type", "message") for item in items] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert answer == f"It is {items[2]['output']} now."


async def test_it_streams_like_a_real_model(sqlite_engine: AsyncEngine) -> None:
    builder, session = await new_conversation(sqlite_engine)
    agent = build_agent(builder, OfflineModel())
    result = Runner.run_streamed(
        agent, "Call me Linus", session=session, context=TurnContext(builder.id, uuid.uuid4())
    )
    event_types = {event.type async for event in result.stream_events()}
    assert "raw_response_event" in event_types
    assert result.final_output == "Nice to meet you, Linus! I'm the offline demo model."


async def test_it_answers_questions_from_the_builders_documents(
    sqlite_engine: AsyncEngine,
) -> None:
    builder, session = await new_conversation(sqlite_engine)
    other, stranger = await new_conversation(sqlite_engine)
    async with create_sessionmaker(sqlite_engine).begin() as db:
        await replace_document(
            builder.id,
            "hours.md",
            ["We bake from 7 am. On Sunday we open at 9 am and close at 1 pm."],
            db=db,
        )
    answer = await ask(builder, session, "When do you open on Sunday?", sqlite_engine)
    assert answer == "From hours.md: On Sunday we open at 9 am and close at 1 pm."
    call = (await session.get_items())[1]
    assert (call.get("type"), call.get("name")) == ("function_call", "search_documents")

    assert await ask(other, stranger, "When do you open on Sunday?", sqlite_engine) == (
        "I don't know: nothing in our documents answers that."
    )


def test_the_offline_model_says_what_media_it_received() -> None:
    photo = (FIXTURES / "media" / "photo.jpg").read_bytes()
    data_url = f"data:image/jpeg;base64,{base64.b64encode(photo).decode()}"
    shown = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "[photo, image/jpeg, 2 KB]\nIs this in stock?"},
                {"type": "input_image", "image_url": data_url, "detail": "auto"},
            ],
        }
    ]
    heard = [{"role": "user", "content": "[voice note 0:02] (offline transcriber: audio/ogg)"}]
    [about_photo] = offline_output(shown, set())  # type: ignore[arg-type]
    [about_voice] = offline_output(heard, set())  # type: ignore[arg-type]
    assert about_photo.content[0].text == (  # type: ignore[union-attr]
        f"I received your photo (image/jpeg, {len(photo):,} bytes) with the caption "
        "\"Is this in stock?\". I'm the offline demo model, so I can't see what is in it."
    )
    assert about_voice.content[0].text == (  # type: ignore[union-attr]
        "I received your voice note 0:02: (offline transcriber: audio/ogg)"
    )


def test_the_offline_model_says_what_a_document_order_or_form_holds() -> None:
    """Read back from the words the runner handed it (as the receiver and the worker
    write them), so a reply shows the message was understood."""
    said = {
        "[document menu.pdf, application/pdf, 12 KB]\nSoup 4 EUR\nBread 2 EUR": (
            'I received your document (menu.pdf, application/pdf, 12 KB). It reads: "Soup 4'
            ' EUR / Bread 2 EUR"'
        ),
        "[order from catalog 7: 2 × product rye at 4 EUR]\nnote: by noon": (
            'I received your order from catalog 7: 2 × product rye at 4 EUR. Your note: "by noon".'
        ),
        "[form submitted: name: Ana, date: 2026-12-24]": (
            "I received your form: name: Ana, date: 2026-12-24."
        ),
    }
    for text, reply in said.items():
        [answer] = offline_output([{"role": "user", "content": text}], {"search_documents"})
        assert answer.content[0].text == reply  # type: ignore[union-attr]


async def test_asked_for_times_it_offers_options_and_hears_the_pick(
    sqlite_engine: AsyncEngine,
) -> None:
    builder, session = await new_conversation(sqlite_engine)
    offer = await ask(builder, session, "What times do you have?", sqlite_engine)
    assert Reply.from_offer(offer) == Reply(
        "Which time suits you?", OfferedOptions(tuple(DEMO_TIMES), "Times")
    )
    picked = await ask(builder, session, "2 (chose: Tomorrow 10:00)", sqlite_engine)
    assert picked == "Tomorrow 10:00 it is. See you then!"

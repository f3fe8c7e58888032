"""Per-process resources of a worker, created once on its event loop and shared by
every conversation it carries: the engine, the OpenAI client, the outbound channels,
the media downloads, the transcriber and the speech synthesiser."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from agents import Model, OpenAIResponsesModel, set_tracing_disabled
from openai import AsyncOpenAI, DefaultAioHttpClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.core.settings import Settings, get_settings
from db.engine import create_engine, create_sessionmaker
from db.media import DatabaseContentStore, MediaContentStore
from db.models import Channel
from db.prepared import autocommit_sessionmaker
from db.statements import StatementConnections
from worker.agent.offline_model import OfflineModel
from worker.agent.openai_client import WorkerOpenAI
from worker.channels.base import OutboundChannel
from worker.channels.pool import ChannelPool
from worker.conversation.held_leases import FreshLeases
from worker.media.fetching import MediaFetcher
from worker.media.speech import OfflineSynthesiser, OpenAISynthesiser, Synthesiser
from worker.media.transcription import OfflineTranscriber, OpenAITranscriber, Transcriber

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    autocommit_sessionmaker: async_sessionmaker[AsyncSession]
    """For a write that is one statement: on Postgres its units of work commit every
    statement on its own, saving the BEGIN and COMMIT round trips, and a prebuilt one
    runs on `statements` (`db.prepared.autocommit_sessionmaker`); on SQLite (whose engine
    opens every transaction itself) it is `sessionmaker`."""
    statements: StatementConnections | None
    openai_client: AsyncOpenAI | None
    channels: ChannelPool
    leases: FreshLeases
    media_fetcher: MediaFetcher
    media_store: MediaContentStore
    transcriber: Transcriber
    synthesiser: Synthesiser
    transcribe_client: AsyncOpenAI | None = None
    """Its own client when TRANSCRIBE_BASE_URL names another server than the model's."""
    speech_client: AsyncOpenAI | None = None
    """Its own client when TTS_BASE_URL names another server than the model's."""
    _models: dict[str, Model] = field(default_factory=dict)

    def model(self, name: str) -> Model:
        """The builder's OpenAI model, or the offline model when no API key is configured."""
        if self.openai_client is None:
            return self._models.setdefault("offline", OfflineModel())
        if name not in self._models:
            self._models[name] = OpenAIResponsesModel(model=name, openai_client=self.openai_client)
        return self._models[name]

    def channel(self, channel: Channel) -> OutboundChannel:
        """Where replies on `channel`'s number go: through its own credentials, else the
        global ones, else the console. Raises UnreadableChannelCredentials (a transient
        turn error) when its own credentials do not decrypt with CREDENTIALS_KEY."""
        return self.channels.channel(channel)

    async def aclose(self) -> None:
        await self.channels.aclose()
        await self.media_fetcher.aclose()
        if self.openai_client is not None:
            await self.openai_client.close()
        for client in (self.transcribe_client, self.speech_client):
            if client is not None:
                await client.close()
        if self.statements is not None:
            await self.statements.aclose()
        await self.engine.dispose()


def create_runtime(settings: Settings) -> Runtime:
    """Build the resources; must run on the loop that will use them."""
    set_tracing_disabled(not settings.agents_tracing)
    engine = create_engine(
        settings.resolved_database_url,
        pool_size=settings.database_pool_size,
        pooler=settings.database_pooler,
    )
    openai_client = None
    if settings.openai_api_key is not None:
        openai_client = WorkerOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
            # aiohttp under openai's client: httpx's pool walks every open connection
            # on each request, costly with a hundred model calls in flight.
            http_client=DefaultAioHttpClient(),
        )
    else:
        logger.info("OPENAI_API_KEY is not set: answering with the offline model")
    transcribe_client = _own_client(settings, settings.transcribe_base_url)
    speech_client = _own_client(settings, settings.tts_base_url)
    transcriber: Transcriber = OfflineTranscriber()
    synthesiser: Synthesiser = OfflineSynthesiser()
    if openai_client is not None:
        transcriber = OpenAITranscriber(
            transcribe_client or openai_client, model=settings.transcribe_model
        )
        synthesiser = OpenAISynthesiser(
            speech_client or openai_client, model=settings.tts_model, voice=settings.tts_voice
        )
    statements = None
    if engine.dialect.name == "postgresql":
        statements = StatementConnections(
            settings.resolved_database_url,
            size=settings.session_connections,
            pooler=settings.database_pooler,
        )
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        autocommit_sessionmaker=autocommit_sessionmaker(engine, statements)
        if statements is not None
        else create_sessionmaker(engine),
        statements=statements,
        openai_client=openai_client,
        channels=ChannelPool(settings),
        leases=FreshLeases(settings.conversation_lease_seconds),
        media_fetcher=MediaFetcher(settings),
        media_store=DatabaseContentStore(),
        transcriber=transcriber,
        synthesiser=synthesiser,
        transcribe_client=transcribe_client,
        speech_client=speech_client,
    )


def _own_client(settings: Settings, base_url: str | None) -> AsyncOpenAI | None:
    """A client of its own for a speech server at `base_url`; None when there is no API
    key or `base_url` is the model's own server (its client serves)."""
    if settings.openai_api_key is None or base_url in (None, settings.openai_base_url):
        return None
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=base_url,
        timeout=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
    )


_runtimes: dict[int, Runtime] = {}


async def current_runtime() -> Runtime:
    """This process's runtime, created on first use on the worker loop."""
    pid = os.getpid()
    if pid not in _runtimes:
        _runtimes[pid] = create_runtime(get_settings())
    return _runtimes[pid]


async def close_runtime() -> None:
    runtime = _runtimes.pop(os.getpid(), None)
    if runtime is not None:
        await runtime.aclose()

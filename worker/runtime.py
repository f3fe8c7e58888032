"""Per-process resources of a worker, created once on its event loop and shared by
every conversation it carries: the engine, the OpenAI client, the outbound channels."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from agents import Model, OpenAIResponsesModel, set_tracing_disabled
from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import create_engine, create_sessionmaker
from db.settings import Settings, get_settings
from db.statements import StatementConnections
from worker.channels.base import OutboundChannel
from worker.channels.console import ConsoleChannel
from worker.channels.meta import MetaChannel
from worker.channels.twilio import TwilioChannel
from worker.leases import FreshLeases
from worker.offline_model import OfflineModel
from worker.openai_client import WorkerOpenAI

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    autocommit_sessionmaker: async_sessionmaker[AsyncSession]
    """For a write that is one statement: on Postgres its units of work commit every
    statement on its own, saving the BEGIN and COMMIT round trips; on SQLite (whose
    engine opens every transaction itself) it is `sessionmaker`."""
    statements: StatementConnections | None
    openai_client: AsyncOpenAI | None
    twilio: TwilioChannel | None
    meta: MetaChannel | None
    leases: FreshLeases
    console: ConsoleChannel = field(default_factory=ConsoleChannel)
    _models: dict[str, Model] = field(default_factory=dict)

    def model(self, name: str) -> Model:
        """The builder's OpenAI model, or the offline model when no API key is configured."""
        if self.openai_client is None:
            return self._models.setdefault("offline", OfflineModel())
        if name not in self._models:
            self._models[name] = OpenAIResponsesModel(model=name, openai_client=self.openai_client)
        return self._models[name]

    def channel(self, provider: str) -> OutboundChannel:
        """Where replies to a provider's users go; the console when it has no credentials."""
        if provider == "twilio" and self.twilio is not None:
            return self.twilio
        if provider == "meta" and self.meta is not None:
            return self.meta
        return self.console

    async def aclose(self) -> None:
        if self.twilio is not None:
            await self.twilio.aclose()
        if self.meta is not None:
            await self.meta.aclose()
        if self.openai_client is not None:
            await self.openai_client.close()
        if self.statements is not None:
            await self.statements.aclose()
        await self.engine.dispose()


def create_runtime(settings: Settings) -> Runtime:
    """Build the resources; must run on the loop that will use them."""
    set_tracing_disabled(not settings.agents_tracing)
    engine = create_engine(settings.resolved_database_url, pool_size=settings.database_pool_size)
    openai_client = None
    if settings.openai_api_key is not None:
        openai_client = WorkerOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
        )
    else:
        logger.info("OPENAI_API_KEY is not set: answering with the offline model")
    twilio = None
    if settings.twilio_can_send:
        assert settings.twilio_account_sid and settings.twilio_auth_token
        status_callback = (
            f"{settings.public_base_url}/webhooks/twilio/status"
            if settings.public_base_url
            else None
        )
        twilio = TwilioChannel(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            timeout=settings.twilio_timeout_seconds,
            api_base_url=settings.twilio_api_base_url,
            status_callback=status_callback,
            typing_indicator=settings.twilio_typing_indicator,
        )
    meta = None
    if settings.meta_access_token is not None:
        meta = MetaChannel(
            access_token=settings.meta_access_token.get_secret_value(),
            api_base_url=settings.meta_api_base_url,
            api_version=settings.meta_api_version,
            timeout=settings.meta_timeout_seconds,
            typing_indicator=settings.typing_indicator,
        )
    statements = None
    if engine.dialect.name == "postgresql":
        statements = StatementConnections(
            settings.resolved_database_url, size=settings.session_connections
        )
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        autocommit_sessionmaker=create_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        if statements is not None
        else create_sessionmaker(engine),
        statements=statements,
        openai_client=openai_client,
        twilio=twilio,
        meta=meta,
        leases=FreshLeases(settings.conversation_lease_seconds),
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

"""An open conversation page's live update is one request and one SQL statement against
the real Postgres, sign-in check included, whether or not anything is new; the page's
browser tests (`test_browser`, `test_takeover_browser`) watch it update live."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.agent_session import DatabaseSession
from db.core.settings import Settings
from db.models import AgentSessionRow, InboundStatus
from tests.fakes.server import serve
from tests.webhooks.dashboard.conftest import World, browser_signed_in
from tests.webhooks.dashboard.test_inbox import arrived
from webhooks.combined_app import create_combined_app


async def test_a_live_update_is_one_statement_with_its_sign_in_check(
    settings: Settings, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The app's own engine is watched (a before-cursor-execute listener), in this process:
    a tick with nothing new and one with a new item and a waiting message each run one
    statement, in autocommit (no BEGIN or COMMIT round trips). The same statement checks
    the cookie's sign-in: a copy of the cookie replayed after signing out is refused."""
    app = create_combined_app(
        settings.model_copy(update={"celery_queue": f"wabot-idle-{uuid.uuid4().hex[:8]}"})
    )
    ran: list[tuple[str, Any]] = []

    def captured(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        ran.append((statement, conn.get_execution_options().get("isolation_level")))

    updates = f"/sessions/{world.session}/updates"
    with serve(app) as url:
        engine = app.router.default.state.runtime.engine
        async with httpx.AsyncClient(base_url=url) as client:
            csrf = await browser_signed_in(client, world.token)
            assert (await client.get(f"/sessions/{world.session}")).status_code == 200
            event.listen(engine.sync_engine, "before_cursor_execute", captured)
            try:
                idle = await client.get(updates, params={"after": 5})
                idle_ran, ran[:] = list(ran), []
                await DatabaseSession(world.session, engine=db_sessions.kw["bind"]).add_items(
                    [{"role": "user", "content": "Are you open on Sunday?"}]
                )
                await arrived(
                    db_sessions, world.session, status=InboundStatus.PENDING, ago=timedelta()
                )
                fresh = await client.get(updates, params={"after": 5})
                fresh_ran, ran[:] = list(ran), []
                replayed = {"wabot_session": client.cookies["wabot_session"]}
                await client.post("/logout", data={"csrf_token": csrf})
                ran[:] = []
                async with httpx.AsyncClient(base_url=url, cookies=replayed) as signed_out:
                    refused = await signed_out.get(updates, params={"after": 6})
                refused_ran = list(ran)
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", captured)
    assert idle.status_code == 200, idle.text
    nothing = idle.json()
    assert (nothing["entries"], nothing["waiting_count"], nothing["more"]) == ("", 0, False)
    assert fresh.status_code == 200, fresh.text
    got = fresh.json()
    assert "Are you open on Sunday?" in got["entries"] and 'data-sequence="6"' in got["entries"]
    assert got["waiting_count"] == 1 and "hello" in got["waiting"]
    assert [isolation for _, isolation in idle_ran] == ["AUTOCOMMIT"]
    assert [isolation for _, isolation in fresh_ran] == ["AUTOCOMMIT"]
    assert "dashboard_sign_ins" in idle_ran[0][0] and "UPDATE sessions" in fresh_ran[0][0]
    async with db_sessions() as db:
        seen = await db.get(AgentSessionRow, world.session)
    assert seen is not None and seen.operator_seen_at is not None
    assert refused.status_code == 401
    assert len(refused_ran) == 1  # the statement found no sign-in standing (a replayed cookie)

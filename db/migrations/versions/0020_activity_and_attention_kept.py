"""The dashboard at ten million items: what its charts, its builders page and its
"needs attention" filter read is kept as rows change, instead of being counted from
every message and turn at each request.

`activity_days` holds, per builder and UTC day, its sessions started, its users' and
agent's messages, its bot turns, their failures and its operators' failed turns;
`reply_times` holds, per builder and day, how many bot turns replied in each tenth of a
second (a median is not additive, a histogram is: the chart shows tenths). `sessions`
gains the facts `db.attention`'s rule reads: its latest turn's status, whether that
turn's latest reply has a part not delivered, whether messages wait, and when the user
last wrote through a number; with an index over the conversations those facts flag.

Triggers keep them (on Postgres, plpgsql; on SQLite, trigger bodies of plain SQL), so
every writer (receiver, worker, dashboard, CLI) keeps them without a statement of its
own; deleting a builder deletes its rows; deleting a conversation takes it off the
session count but leaves its messages and turns counted on the days they happened (as
does clearing its memory). The same SQL fills them from what is stored
(`backfill`, which the dashboard bench runs too): after the upgrade, a deployment's
charts and filter show what they showed before.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILED = "status IN ('failed', 'retried')"
"""A failed turn, as the charts count it (retried ones included)."""
WAITS = "status IN ('pending', 'processing')"
"""An inbox message not answered yet."""


def _dialect(postgres: bool) -> dict[str, str]:
    """The few expressions the two databases spell differently, by name."""
    if postgres:
        return {
            "day": "(({}) AT TIME ZONE 'UTC')::date",
            "seconds": "extract(epoch FROM ({}) - ({}))",
            "role": "({}) ->> 'role'",
        }
    return {
        "day": "date({})",
        "seconds": "((julianday({}) - julianday({})) * 86400.0)",
        "role": "json_extract({}, '$.role')",
    }


def latest_turn_status(of: str) -> str:
    """The status of the conversation `of`'s newest turn."""
    return f"(SELECT status FROM turns WHERE session_id = {of} ORDER BY created_at DESC LIMIT 1)"


def latest_reply_undelivered(of: str) -> str:
    """A part of the latest try of the newest turn's reply failed or was not delivered."""
    latest = f"(SELECT id FROM turns WHERE session_id = {of} ORDER BY created_at DESC LIMIT 1)"
    return (
        f"EXISTS (SELECT 1 FROM outbound_messages AS part WHERE part.turn_id = {latest}"
        " AND part.retry = (SELECT max(retry) FROM outbound_messages"
        f" WHERE turn_id = {latest}) AND part.status IN ('failed', 'undelivered'))"
    )


def messages_waiting(of: str) -> str:
    """An inbox message of the conversation is not answered yet."""
    return f"EXISTS (SELECT 1 FROM inbound_messages WHERE session_id = {of} AND {WAITS})"


def last_user_message_at(of: str) -> str:
    """When the user last wrote through a WhatsApp number (where the reply window starts)."""
    return (
        "(SELECT max(received_at) FROM inbound_messages"
        f" WHERE session_id = {of} AND channel_id IS NOT NULL)"
    )


def reply_tenths(turn: str, postgres: bool) -> str:
    """A replied bot turn's reply time in tenths of a second, from the first message it
    answered arriving (its own start when it answered none); NULL for other turns."""
    seconds = _dialect(postgres)["seconds"].format(
        f"{turn}.finished_at",
        "coalesce((SELECT min(received_at) FROM inbound_messages"
        f" WHERE turn_id = {turn}.id), {turn}.created_at)",
    )
    return (
        f"CASE WHEN {turn}.status = 'replied' AND {turn}.finished_at IS NOT NULL"
        f" AND NOT {turn}.by_operator THEN CAST(round({seconds} * 10) AS INTEGER) END"
    )


ATTENTION_PREDICATE = (
    "latest_turn_status = 'failed' OR latest_reply_undelivered"
    " OR (paused_at IS NOT NULL AND messages_waiting)"
)
"""The time-independent part of `db.attention`'s rule, as `needs_attention` spells it
(the index serves it only while the two agree)."""


def counted_activity(postgres: bool) -> str:
    """`activity_days`' rows as counted from the stored sessions, messages and turns."""
    spelled = _dialect(postgres)
    day, role = spelled["day"], spelled["role"]
    item_day, turn_day, session_day = (day.format(f"{t}.created_at") for t in ("i", "t", "s"))
    return f"""
        SELECT builder_id, day, sum(sessions), sum(messages), sum(turns), sum(failures),
            sum(operator_failures)
        FROM (
            SELECT s.builder_id, {session_day} AS day, 1 AS sessions, 0 AS messages,
                0 AS turns, 0 AS failures, 0 AS operator_failures
            FROM sessions AS s
            UNION ALL
            SELECT s.builder_id, {item_day}, 0, 1, 0, 0, 0
            FROM session_items AS i JOIN sessions AS s ON s.id = i.session_id
            WHERE {role.format("i.item_data")} IN ('user', 'assistant')
            UNION ALL
            SELECT s.builder_id, {turn_day}, 0, 0,
                CASE WHEN t.by_operator THEN 0 ELSE 1 END,
                CASE WHEN NOT t.by_operator AND t.{FAILED} THEN 1 ELSE 0 END,
                CASE WHEN t.by_operator AND t.{FAILED} THEN 1 ELSE 0 END
            FROM turns AS t JOIN sessions AS s ON s.id = t.session_id
        ) AS counted
        GROUP BY builder_id, day
    """


def counted_reply_times(postgres: bool, tenths: str = "") -> str:
    """`reply_times`' rows as counted from the stored turns and messages (`tenths`: the
    turns' reply times when they are stored already, `t.reply_tenths`)."""
    turn_day = _dialect(postgres)["day"].format("t.created_at")
    return f"""
        SELECT builder_id, day, tenths, count(*)
        FROM (
            SELECT s.builder_id, {turn_day} AS day,
                {tenths or reply_tenths("t", postgres)} AS tenths
            FROM turns AS t JOIN sessions AS s ON s.id = t.session_id
        ) AS timed
        WHERE tenths IS NOT NULL
        GROUP BY builder_id, day, tenths
    """


def backfill(postgres: bool) -> list[str]:
    """Statements that fill the kept rows and columns from the stored conversations (with
    the triggers off: an upgrade creates them after)."""
    return [
        "DELETE FROM activity_days",
        "DELETE FROM reply_times",
        "INSERT INTO activity_days (builder_id, day, sessions, messages, turns, failures,"
        f" operator_failures) {counted_activity(postgres)}",
        f"UPDATE turns SET reply_tenths = {reply_tenths('turns', postgres)}"
        " WHERE status = 'replied' AND finished_at IS NOT NULL AND NOT by_operator",
        "INSERT INTO reply_times (builder_id, day, tenths, turns)"
        f" {counted_reply_times(postgres, 't.reply_tenths')}",
        f"""
        UPDATE sessions SET
            latest_turn_status = {latest_turn_status("sessions.id")},
            latest_reply_undelivered = {latest_reply_undelivered("sessions.id")},
            messages_waiting = {messages_waiting("sessions.id")},
            last_user_message_at = {last_user_message_at("sessions.id")}
        """,
    ]


def _upsert(table: str, keys: str, columns: str, values: str, where: str = "") -> str:
    """Add `values` to a kept row (creating it), as one statement of either database."""
    added = ", ".join(
        f"{column} = {table}.{column} + excluded.{column}" for column in columns.split(", ")
    )
    return (
        f"INSERT INTO {table} ({keys}, {columns}) {values} {where}"
        f" ON CONFLICT ({keys}) DO UPDATE SET {added}"
    )


DAY_KEYS = "builder_id, day"
DAY_COLUMNS = "sessions, messages, turns, failures, operator_failures"
TENTHS_KEYS = "builder_id, day, tenths"

POSTGRES_FUNCTIONS = {
    "wabot_keep_session_days": f"""
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {
        _upsert(
            "activity_days",
            DAY_KEYS,
            DAY_COLUMNS,
            "VALUES (NEW.builder_id, (NEW.created_at AT TIME ZONE 'UTC')::date, 1, 0, 0, 0, 0)",
        )
    };
        ELSE
            UPDATE activity_days SET sessions = sessions - 1
            WHERE builder_id = OLD.builder_id
                AND day = (OLD.created_at AT TIME ZONE 'UTC')::date;
        END IF;
        RETURN NULL;
    END
    """,
    "wabot_keep_message_days": f"""
    BEGIN
        {
        _upsert(
            "activity_days",
            DAY_KEYS,
            DAY_COLUMNS,
            "SELECT s.builder_id, (i.created_at AT TIME ZONE 'UTC')::date, 0, count(*), 0, 0, 0"
            " FROM stored AS i JOIN sessions AS s ON s.id = i.session_id"
            " WHERE i.item_data ->> 'role' IN ('user', 'assistant') GROUP BY 1, 2",
        )
    };
        RETURN NULL;
    END
    """,
    "wabot_time_reply": f"""
    BEGIN
        NEW.reply_tenths := {reply_tenths("NEW", postgres=True)};
        RETURN NEW;
    END
    """,
    "wabot_keep_turn_days": f"""
    DECLARE
        builder uuid;
        turn_day date := (NEW.created_at AT TIME ZONE 'UTC')::date;
        failed_before int := 0;
        failed_now int := CASE WHEN NEW.{FAILED} THEN 1 ELSE 0 END;
        tenths_before int;
        started int := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE 0 END;
        kept_status text;
        kept_undelivered boolean;
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            failed_before := CASE WHEN OLD.{FAILED} THEN 1 ELSE 0 END;
            tenths_before := OLD.reply_tenths;
        END IF;
        IF started = 1 OR failed_now <> failed_before
            OR NEW.reply_tenths IS DISTINCT FROM tenths_before
        THEN
            SELECT builder_id INTO builder FROM sessions WHERE id = NEW.session_id;
        END IF;
        IF started = 1 OR failed_now <> failed_before THEN
            {
        _upsert(
            "activity_days",
            DAY_KEYS,
            DAY_COLUMNS,
            "VALUES (builder, turn_day, 0, 0,"
            " CASE WHEN NEW.by_operator THEN 0 ELSE started END,"
            " CASE WHEN NEW.by_operator THEN 0 ELSE failed_now - failed_before END,"
            " CASE WHEN NEW.by_operator THEN failed_now - failed_before ELSE 0 END)",
        )
    };
        END IF;
        IF tenths_before IS DISTINCT FROM NEW.reply_tenths AND tenths_before IS NOT NULL THEN
            UPDATE reply_times AS kept SET turns = kept.turns - 1
            WHERE kept.builder_id = builder AND kept.day = turn_day AND kept.tenths = tenths_before;
        END IF;
        IF tenths_before IS DISTINCT FROM NEW.reply_tenths AND NEW.reply_tenths IS NOT NULL THEN
            {
        _upsert(
            "reply_times", TENTHS_KEYS, "turns", "VALUES (builder, turn_day, NEW.reply_tenths, 1)"
        )
    };
        END IF;
        IF started = 1 OR OLD.status IS DISTINCT FROM NEW.status THEN
            kept_status := {latest_turn_status("NEW.session_id")};
            kept_undelivered := {latest_reply_undelivered("NEW.session_id")};
            UPDATE sessions SET latest_turn_status = kept_status,
                latest_reply_undelivered = kept_undelivered
            WHERE id = NEW.session_id AND (latest_turn_status IS DISTINCT FROM kept_status
                OR latest_reply_undelivered IS DISTINCT FROM kept_undelivered);
        END IF;
        RETURN NULL;
    END
    """,
    "wabot_keep_reply_delivery": f"""
    DECLARE
        kept boolean := {latest_reply_undelivered("NEW.session_id")};
    BEGIN
        UPDATE sessions SET latest_reply_undelivered = kept
        WHERE id = NEW.session_id AND latest_reply_undelivered IS DISTINCT FROM kept;
        RETURN NULL;
    END
    """,
    # A new message only adds (waiting, a later last message): no query. A status that
    # stops or starts waiting, or a message moved, counts again.
    "wabot_keep_waiting": f"""
    DECLARE
        conversation uuid;
        waiting boolean;
        last_wrote timestamptz;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE sessions SET
                messages_waiting = messages_waiting OR NEW.{WAITS},
                last_user_message_at = CASE WHEN NEW.channel_id IS NOT NULL
                    THEN greatest(last_user_message_at, NEW.received_at)
                    ELSE last_user_message_at END
            WHERE id = NEW.session_id AND ((NEW.{WAITS} AND NOT messages_waiting)
                OR (NEW.channel_id IS NOT NULL
                    AND NEW.received_at > coalesce(last_user_message_at, '-infinity')));
        ELSIF OLD.session_id IS DISTINCT FROM NEW.session_id
            OR OLD.received_at IS DISTINCT FROM NEW.received_at
            OR OLD.channel_id IS DISTINCT FROM NEW.channel_id
            OR (OLD.{WAITS}) IS DISTINCT FROM (NEW.{WAITS})
        THEN
            FOREACH conversation IN ARRAY ARRAY[NEW.session_id, OLD.session_id] LOOP
                CONTINUE WHEN conversation IS NULL;
                waiting := {messages_waiting("conversation")};
                last_wrote := {last_user_message_at("conversation")};
                UPDATE sessions SET messages_waiting = waiting, last_user_message_at = last_wrote
                WHERE id = conversation AND (messages_waiting IS DISTINCT FROM waiting
                    OR last_user_message_at IS DISTINCT FROM last_wrote);
            END LOOP;
        END IF;
        IF (TG_OP = 'INSERT' AND NEW.turn_id IS NOT NULL) OR (TG_OP = 'UPDATE'
            AND (OLD.turn_id IS DISTINCT FROM NEW.turn_id
                OR OLD.received_at IS DISTINCT FROM NEW.received_at))
        THEN
            UPDATE turns SET reply_tenths = {reply_tenths("turns", postgres=True)}
            WHERE id IN (NEW.turn_id, OLD.turn_id)
                AND reply_tenths IS DISTINCT FROM {reply_tenths("turns", postgres=True)};
        END IF;
        RETURN NULL;
    END
    """,
}

POSTGRES_TRIGGERS = {
    "sessions_activity": "AFTER INSERT OR DELETE ON sessions FOR EACH ROW"
    " EXECUTE FUNCTION wabot_keep_session_days()",
    "session_items_activity": "AFTER INSERT ON session_items REFERENCING NEW TABLE AS stored"
    " FOR EACH STATEMENT EXECUTE FUNCTION wabot_keep_message_days()",
    "turns_reply_time": "BEFORE INSERT OR UPDATE OF status, finished_at ON turns FOR EACH ROW"
    " EXECUTE FUNCTION wabot_time_reply()",
    "turns_activity": "AFTER INSERT OR UPDATE OF status, finished_at, reply_tenths ON turns"
    " FOR EACH ROW EXECUTE FUNCTION wabot_keep_turn_days()",
    "outbound_messages_attention": "AFTER INSERT OR UPDATE OF status, retry"
    " ON outbound_messages FOR EACH ROW EXECUTE FUNCTION wabot_keep_reply_delivery()",
    "inbound_messages_attention": "AFTER INSERT OR UPDATE OF status, session_id, received_at,"
    " channel_id, turn_id ON inbound_messages FOR EACH ROW EXECUTE FUNCTION wabot_keep_waiting()",
}
"""Each trigger and when it runs; its function is the `POSTGRES_FUNCTIONS` it names."""


def _sqlite_turn_days(before: str) -> list[str]:
    """The statements of a SQLite turn trigger: `before` is the OLD row's alias, or empty
    on insert."""
    failed_now = f"CASE WHEN new.{FAILED} THEN 1 ELSE 0 END"
    failed_before = f"CASE WHEN {before}.{FAILED} THEN 1 ELSE 0 END" if before else "0"
    started = "0" if before else "1"
    builder = "(SELECT builder_id FROM sessions WHERE id = new.session_id)"
    changed = f"({failed_now}) <> ({failed_before})" if before else "1"
    return [
        _upsert(
            "activity_days",
            DAY_KEYS,
            DAY_COLUMNS,
            f"SELECT {builder}, date(new.created_at), 0, 0,"
            f" CASE WHEN new.by_operator THEN 0 ELSE {started} END,"
            f" CASE WHEN new.by_operator THEN 0 ELSE ({failed_now}) - ({failed_before}) END,"
            f" CASE WHEN new.by_operator THEN ({failed_now}) - ({failed_before}) ELSE 0 END",
            f"WHERE {changed}",
        ),
        f"UPDATE sessions SET latest_turn_status = {latest_turn_status('new.session_id')},"
        f" latest_reply_undelivered = {latest_reply_undelivered('new.session_id')}"
        " WHERE id = new.session_id",
    ]


def _sqlite_time_reply(of: str) -> str:
    """Store the turn `of`'s reply time; the `turns_reply_times` trigger moves it."""
    tenths = reply_tenths("turns", postgres=False)
    return (
        f"UPDATE turns SET reply_tenths = {tenths} WHERE id = {of} AND reply_tenths IS NOT {tenths}"
    )


_SQLITE_REPLY_TIMES = [
    "UPDATE reply_times SET turns = turns - 1 WHERE builder_id ="
    " (SELECT builder_id FROM sessions WHERE id = new.session_id)"
    " AND day = date(new.created_at) AND tenths = old.reply_tenths",
    _upsert(
        "reply_times",
        TENTHS_KEYS,
        "turns",
        "SELECT builder_id, date(new.created_at), new.reply_tenths, 1 FROM sessions",
        "WHERE id = new.session_id AND new.reply_tenths IS NOT NULL",
    ),
]


def _sqlite_waiting(of: str) -> str:
    return (
        f"UPDATE sessions SET messages_waiting = {messages_waiting(of)},"
        f" last_user_message_at = {last_user_message_at(of)} WHERE id = {of}"
    )


SQLITE_TRIGGERS = {
    "sessions_activity_insert": (
        "AFTER INSERT ON sessions",
        [
            _upsert(
                "activity_days",
                DAY_KEYS,
                DAY_COLUMNS,
                "SELECT new.builder_id, date(new.created_at), 1, 0, 0, 0, 0",
                "WHERE 1",
            )
        ],
    ),
    "sessions_activity_delete": (
        "AFTER DELETE ON sessions",
        [
            "UPDATE activity_days SET sessions = sessions - 1"
            " WHERE builder_id = old.builder_id AND day = date(old.created_at)"
        ],
    ),
    "session_items_activity": (
        "AFTER INSERT ON session_items"
        " WHEN json_extract(new.item_data, '$.role') IN ('user', 'assistant')",
        [
            _upsert(
                "activity_days",
                DAY_KEYS,
                DAY_COLUMNS,
                "SELECT builder_id, date(new.created_at), 0, 1, 0, 0, 0 FROM sessions",
                "WHERE id = new.session_id",
            )
        ],
    ),
    "turns_activity_insert": (
        "AFTER INSERT ON turns",
        [*_sqlite_turn_days(""), _sqlite_time_reply("new.id")],
    ),
    "turns_activity_update": (
        "AFTER UPDATE OF status ON turns",
        _sqlite_turn_days("old"),
    ),
    "turns_reply_time": (
        "AFTER UPDATE OF status, finished_at ON turns",
        [_sqlite_time_reply("new.id")],
    ),
    "turns_reply_times": (
        "AFTER UPDATE OF reply_tenths ON turns WHEN old.reply_tenths IS NOT new.reply_tenths",
        _SQLITE_REPLY_TIMES,
    ),
    "outbound_messages_attention_insert": (
        "AFTER INSERT ON outbound_messages",
        [
            "UPDATE sessions SET latest_reply_undelivered ="
            f" {latest_reply_undelivered('new.session_id')} WHERE id = new.session_id"
        ],
    ),
    "outbound_messages_attention_update": (
        "AFTER UPDATE OF status, retry ON outbound_messages",
        [
            "UPDATE sessions SET latest_reply_undelivered ="
            f" {latest_reply_undelivered('new.session_id')} WHERE id = new.session_id"
        ],
    ),
    "inbound_messages_attention_insert": (
        "AFTER INSERT ON inbound_messages",
        [_sqlite_waiting("new.session_id"), _sqlite_time_reply("new.turn_id")],
    ),
    "inbound_messages_attention_update": (
        "AFTER UPDATE OF status, session_id, received_at, channel_id, turn_id ON inbound_messages",
        [
            _sqlite_waiting("new.session_id"),
            _sqlite_waiting("old.session_id"),
            _sqlite_time_reply("new.turn_id"),
            _sqlite_time_reply("old.turn_id"),
        ],
    ),
}
"""Each SQLite trigger: when it runs and its statements."""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "activity_days",
        sa.Column(
            "builder_id",
            sa.Uuid(),
            sa.ForeignKey("builders.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        *(
            sa.Column(name, sa.Integer(), nullable=False, server_default="0")
            for name in DAY_COLUMNS.split(", ")
        ),
    )
    op.create_table(
        "reply_times",
        sa.Column(
            "builder_id",
            sa.Uuid(),
            sa.ForeignKey("builders.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("tenths", sa.Integer(), primary_key=True),
        sa.Column("turns", sa.Integer(), nullable=False, server_default="0"),
    )
    # Added in place: rebuilding `sessions` (batch mode) would drop it, and SQLite's
    # foreign keys would delete its conversations' items and turns with it.
    op.add_column("sessions", sa.Column("latest_turn_status", sa.String(16)))
    for flag in ("latest_reply_undelivered", "messages_waiting"):
        op.add_column(
            "sessions", sa.Column(flag, sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.add_column("sessions", sa.Column("last_user_message_at", sa.DateTime(timezone=True)))
    op.add_column("turns", sa.Column("reply_tenths", sa.Integer()))
    for statement in backfill(postgres):
        op.execute(statement)
    op.create_index(
        "ix_sessions_needing_attention",
        "sessions",
        ["builder_id"],
        postgresql_where=sa.text(ATTENTION_PREDICATE),
        sqlite_where=sa.text(ATTENTION_PREDICATE),
    )
    op.create_index(
        "ix_sessions_builder_id_last_user_message_at",
        "sessions",
        ["builder_id", "last_user_message_at"],
    )
    if postgres:
        for name, body in POSTGRES_FUNCTIONS.items():
            op.execute(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger"
                f" LANGUAGE plpgsql AS $${body}$$"
            )
        for name, when in POSTGRES_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when}")
    else:
        for name, (when, statements) in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {'; '.join(statements)}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, when in POSTGRES_TRIGGERS.items():
            op.execute(f"DROP TRIGGER {name} ON {when.split(' ON ')[1].split()[0]}")
        for name in POSTGRES_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index("ix_sessions_builder_id_last_user_message_at", "sessions")
    op.drop_index("ix_sessions_needing_attention", "sessions")
    with op.batch_alter_table("sessions") as sessions:
        sessions.drop_column("last_user_message_at")
        sessions.drop_column("messages_waiting")
        sessions.drop_column("latest_reply_undelivered")
        sessions.drop_column("latest_turn_status")
    with op.batch_alter_table("turns") as turns:
        turns.drop_column("reply_tenths")
    op.drop_table("reply_times")
    op.drop_table("activity_days")

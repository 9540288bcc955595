"""SQLite: the project and user listing indexes lead with the event's day.

``(project_id, generated, message_id)`` and ``(user_id, generated, message_id)`` take each
new event at the end of its project's and its user's range: a batch of 1,000 events from
500 users changed ~500 scattered pages of the user index alone, and SQLite writes every
changed page to the WAL at each commit (~1,100 of the ~3,200 pages of such a batch were
these two indexes). Led by the day, ``(generated / 86400000000, project_id, generated,
message_id)``, the entries of one day's events are together, and a batch, whose events
are of the same hours, changes the pages of one day's region of the index instead.

Listings still read a project's or a user's events in order: the day is monotonic in
``generated``, so ordering by (day, generated, message_id) is ordering by (generated,
message_id), and the driver reads the index one day after the other (``day IN`` the days
of the store, which SQLite walks in order). The expression must stay written exactly as
here for SQLite to match the queries' ``event.generated / 86400000000`` to the indexes.

PostgreSQL and MySQL/MariaDB keep the 0002 indexes: their writes do not cost per page
changed as SQLite's commits do, and MariaDB has no expression indexes.

Building the indexes reads the event table once per index (minutes for tens of millions of
events, writers wait meanwhile).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DAY = "generated / 86400000000"
OWNERS = ("project_id", "user_id")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for owner in OWNERS:
        op.execute(
            f"CREATE INDEX ix_event_day_{owner} ON event ({DAY}, {owner}, generated, message_id)"
        )
        op.drop_index(f"ix_event_{owner}_generated_message_id", table_name="event")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for owner in OWNERS:
        op.create_index(
            f"ix_event_{owner}_generated_message_id", "event", [owner, "generated", "message_id"]
        )
        op.drop_index(f"ix_event_day_{owner}", table_name="event")

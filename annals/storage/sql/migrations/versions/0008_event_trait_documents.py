"""The event row keeps its trait documents, as the API shows them.

A page of events used to read every trait row of its events (four trait tables, one index
probe per event and table) and make a document of each trait. ``event.traits`` holds the
JSON text of an event's trait documents (name, value as text, type; sorted by name and
type), written in the same transaction as its trait rows, which stay the only thing trait
filters, trait descriptions and trait values read.

Events stored before this revision keep ``traits`` NULL: their traits are read from the
trait tables, as before. Adding a nullable column rewrites nothing on any engine.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
    op.add_column("event", sa.Column("traits", text, nullable=True))


def downgrade() -> None:
    # Not a batch (table copy) on SQLite: that would drop the expression indexes of 0006,
    # which Alembic cannot reflect. SQLite has had DROP COLUMN since 3.35.
    op.execute("ALTER TABLE event DROP COLUMN traits")

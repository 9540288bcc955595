"""Initial schema: events, event types, typed trait tables, trait type catalogue.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mariadb_engine": "InnoDB",
    "mariadb_charset": "utf8mb4",
    "mariadb_collate": "utf8mb4_bin",
}
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_type",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_type"),
        sa.UniqueConstraint("name", name="uq_event_type_name"),
        **TABLE_ARGS,
    )
    op.create_table(
        "event",
        sa.Column("id", BIG_ID, autoincrement=True),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("event_type_id", sa.Integer, nullable=False),
        sa.Column("generated", sa.BigInteger, nullable=False),
        sa.Column("project_id", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column(
            "raw", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name="pk_event"),
        sa.UniqueConstraint("message_id", name="uq_event_message_id"),
        sa.ForeignKeyConstraint(
            ["event_type_id"], ["event_type.id"], name="fk_event_event_type_id_event_type"
        ),
        **TABLE_ARGS,
    )
    op.create_index("ix_event_generated_message_id", "event", ["generated", "message_id"])
    op.create_index("ix_event_event_type_id_generated", "event", ["event_type_id", "generated"])
    op.create_index(
        "ix_event_project_id_user_id_generated", "event", ["project_id", "user_id", "generated"]
    )
    for table, value_type in (
        ("trait_string", sa.String(500)),
        ("trait_integer", sa.BigInteger()),
        ("trait_float", sa.Double()),
        ("trait_datetime", sa.BigInteger()),
    ):
        op.create_table(
            table,
            sa.Column("event_id", BIG_ID, nullable=False),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("value", value_type, nullable=False),
            sa.PrimaryKeyConstraint("event_id", "name", name=f"pk_{table}"),
            sa.ForeignKeyConstraint(
                ["event_id"], ["event.id"], name=f"fk_{table}_event_id_event", ondelete="CASCADE"
            ),
            **TABLE_ARGS,
        )
        op.create_index(f"ix_{table}_name_value_event_id", table, ["name", "value", "event_id"])
    op.create_table(
        "trait_type",
        sa.Column("event_type_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("event_type_id", "name", "type", name="pk_trait_type"),
        sa.ForeignKeyConstraint(
            ["event_type_id"],
            ["event_type.id"],
            name="fk_trait_type_event_type_id_event_type",
            ondelete="CASCADE",
        ),
        **TABLE_ARGS,
    )


def downgrade() -> None:
    for table in (
        "trait_type",
        "trait_datetime",
        "trait_float",
        "trait_integer",
        "trait_string",
        "event",
        "event_type",
    ):
        op.drop_table(table)

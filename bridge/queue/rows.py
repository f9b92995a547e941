"""Inserting new model rows with an INSERT written once: the hot inserts of ingest (Event) and of the database
queue (QueueEntry).

The ORM's bulk_create compiles its INSERT anew on every call, about half of its ~0.3 ms for one row, on the thread
every database call of a process queues behind (the MCP server's send path is mostly that thread). Here the
statement is built once per model, database vendor and row count, from the model's _meta (so its columns follow
the model), and only the values are prepared per row, the way bulk_create prepares them (``pre_save`` fills
auto_now_add, ``get_db_prep_save`` adapts dates, JSON and bytes). Errors are Django's (IntegrityError for a
duplicate key), as from bulk_create.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections
from django.db.models import Field, Model

_CACHED_ROW_COUNTS = 64
"""Statements for batches up to this many rows are kept (one per size); larger ones are rare and built each time."""

_statements: dict[tuple[type[Model], str, int], str] = {}


def insert_new(objs: Sequence[Model], *, using: str = "default") -> None:
    """Insert ``objs`` (new instances of one model, primary keys unset) and set their primary keys.

    Needs ``INSERT ... RETURNING`` (PostgreSQL, SQLite 3.35+); without it, bulk_create does the work."""
    if not objs:
        return
    model = type(objs[0])
    conn = connections[using]
    if not conn.features.can_return_rows_from_bulk_insert:
        model._base_manager.using(using).bulk_create(objs)
        return
    fields = _columns(model)
    # Every database takes 999 parameters; asking the backend for its limit costs more than a one-row insert.
    fits = len(objs) * len(fields) <= 999
    per_statement = len(objs) if fits else max(conn.ops.bulk_batch_size(fields, objs), 1)
    for start in range(0, len(objs), per_statement):
        chunk = objs[start : start + per_statement]
        params = [
            field.get_db_prep_save(field.pre_save(obj, True), conn) for obj in chunk for field in fields
        ]
        with conn.cursor() as cursor:
            cursor.execute(_statement(model, conn, len(chunk)), params)
            pks = cursor.fetchall()
        for obj, (pk,) in zip(chunk, pks, strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = using


def _columns(model: type[Model]) -> list[Field]:
    """Every column but the automatic primary key, in _meta order."""
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def _statement(model: type[Model], conn, rows: int) -> str:
    key = (model, conn.vendor, rows)
    sql = _statements.get(key)
    if sql is None:
        meta, qn = model._meta, conn.ops.quote_name
        columns = _columns(model)
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        sql = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(field.column) for field in columns)}) "
            f"VALUES {', '.join([row] * rows)} RETURNING {qn(meta.pk.column)}"
        )
        if rows <= _CACHED_ROW_COUNTS:
            _statements[key] = sql
    return sql

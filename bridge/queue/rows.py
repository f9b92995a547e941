"""Inserting new model rows with an INSERT written once: the hot inserts of ingest (Event) and of the database
queue (QueueEntry).

The ORM's bulk_create compiles its INSERT anew on every call, about half of its ~0.3 ms for one row, on the thread
every database call of a process queues behind (the MCP server's send path is mostly that thread). Here a plan is
made once per model and database vendor, from the model's _meta (so its columns follow the model): the statement
per row count, already in the driver's placeholder style, and per column how its value is prepared. Values are
prepared as bulk_create prepares them (``pre_save`` fills auto_now_add, ``get_db_prep_save`` adapts dates, JSON
and bytes), except that a str in a text column, an int in an integer one, a bool in a boolean one, or None, goes
as it is, which is what ``get_db_prep_save`` would return for it, at a tenth of the cost. The statement runs on the
driver's own cursor, inside Django's error wrapping (IntegrityError for a duplicate key, as from bulk_create) and
its broken-transaction check; being below Django's cursor wrapper, it is not in ``connection.queries``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import DateField, Field, Model

_CACHED_ROW_COUNTS = 64
"""Statements for batches up to this many rows are kept (one per size); larger ones are rare and built each time."""

# Per column kind, the one value type its get_db_prep_save returns unchanged (None too): a value of exactly that
# type goes as it is; any other (an int for a boolean, a str for an integer, an enum) is prepared by the field.
_TEXT = ("CharField", "TextField", "SlugField")
_INTEGER = (
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "PositiveBigIntegerField",
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
)
_PLAIN_TYPE = {**dict.fromkeys(_TEXT, str), **dict.fromkeys(_INTEGER, int), "BooleanField": bool}


@dataclass
class _Plan:
    """How rows of one model go into one database: the columns, their preparers, the statements by row count."""

    model: type[Model]
    vendor: str
    columns: list[Field]
    preparers: list[Callable[[Model, Any], Any]]
    statements: dict[int, str] = field(default_factory=dict)

    def statement(self, conn, rows: int) -> str:
        sql = self.statements.get(rows)
        if sql is None:
            meta, qn = self.model._meta, conn.ops.quote_name
            mark = "?" if self.vendor == "sqlite" else "%s"
            row = "(" + ", ".join([mark] * len(self.columns)) + ")"
            sql = (
                f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in self.columns)}) "
                f"VALUES {', '.join([row] * rows)} RETURNING {qn(meta.pk.column)}"
            )
            if rows <= _CACHED_ROW_COUNTS:
                self.statements[rows] = sql
        return sql

    def cursor(self, conn):
        """The driver's cursor: on SQLite the plain one (Django's converts every statement's %s to ?)."""
        return conn.connection.cursor() if self.vendor == "sqlite" else conn.create_cursor()


_plans: dict[tuple[type[Model], str], _Plan] = {}


def drop_if_broken(using: str = "default") -> None:
    """Close this thread's connection if a query on it failed and it is no longer usable (the server restarted,
    an idle connection was cut), so that the next query reconnects. Never inside a transaction. A long-lived thread
    calls this before its work: Django does it only at the start and end of requests."""
    conn = connections[using]
    if conn.connection is not None and conn.errors_occurred and not conn.in_atomic_block:
        conn.close_if_unusable_or_obsolete()


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
    plan = _plan(model, conn)
    # Every database takes 999 parameters; asking the backend for its limit costs more than a one-row insert.
    width = len(plan.columns)
    per_statement = (
        len(objs) if len(objs) * width <= 999 else max(conn.ops.bulk_batch_size(plan.columns, objs), 1)
    )
    conn.ensure_connection()
    conn.validate_no_broken_transaction()
    for start in range(0, len(objs), per_statement):
        chunk = objs[start : start + per_statement]
        params = [prepare(obj, conn) for obj in chunk for prepare in plan.preparers]
        with conn.wrap_database_errors:
            cursor = plan.cursor(conn)
            try:
                cursor.execute(plan.statement(conn, len(chunk)), params)
                pks = cursor.fetchall()
            finally:
                cursor.close()
        for obj, (pk,) in zip(chunk, pks, strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = using


def _plan(model: type[Model], conn) -> _Plan:
    key = (model, conn.vendor)
    plan = _plans.get(key)
    if plan is None:
        columns = [f for f in model._meta.concrete_fields if not f.primary_key]
        plan = _plans[key] = _Plan(model, conn.vendor, columns, [_preparer(f) for f in columns])
    return plan


def _preparer(column: Field) -> Callable[[Model, Any], Any]:
    prep_save, attname = column.get_db_prep_save, column.attname
    if isinstance(column, DateField) and (column.auto_now or column.auto_now_add):
        return lambda obj, conn: prep_save(column.pre_save(obj, True), conn)
    kind = column.target_field if column.is_relation else column
    plain_type = _PLAIN_TYPE.get(kind.get_internal_type())
    if plain_type is not None:

        def plain(obj: Model, conn) -> Any:
            value = getattr(obj, attname)
            return value if value is None or type(value) is plain_type else prep_save(value, conn)

        return plain
    return lambda obj, conn: prep_save(getattr(obj, attname), conn)

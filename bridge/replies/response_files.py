"""Response files: every answer from Telegram as one JSON file in the responses folder, mirrored by a Response row.

The contract (DESIGN.md, "Responses"), which agents and the Claude Code hook read:

- a button press, or an approval that timed out: ``telegram_callback_<user_id>_<YYYYmmdd_HHMMSS>_<suffix>.json``
  with timestamp, user_id, username, first_name, callback_data, original_message_id, response_type
  ("callback_query"), event_id, task_id, decision;
- a text reply: ``telegram_response_<user_id>_<YYYYmmdd_HHMMSS>_<suffix>.json`` with timestamp, user_id,
  username, first_name, message_text, message_type, event_id, task_id.

Absent values are null. The time is the row's ``created_at`` in UTC; ``suffix`` is the row's primary key, unique
across every worker, so any number of answers within one second get distinct names. Name and content derive from
the row alone: a retry rewrites the very same file. Files are written atomically (a hidden temp name in the same
folder, then ``os.replace``), so a reader never sees half a file.

The database comes first: a row is stored with ``file_error = PENDING`` before its file is written, and the
error is cleared once the file is there (or replaced by the reason it could not be written). A row whose file is
missing is therefore always visible, and ``retry_unwritten`` (swept by the worker) writes it once the folder is
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from datetime import UTC, timedelta
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from bridge.models import Response

logger = logging.getLogger(__name__)

PENDING = "not written yet"
# A row still PENDING this long after it was stored lost its writer (a crash): the sweep takes it over.
PENDING_GRACE = timedelta(seconds=5)
RETRY_BATCH = 500

Rendered = tuple[int, str, bytes]
"""(response pk, file name, file content)."""


def responses_dir() -> Path:
    """The responses folder, read at each use: an operator (or a test) may repoint it."""
    return Path(settings.CC_TELEGRAM_RESPONSES_DIR)


def file_name(response: Response) -> str:
    """The file a stored response is written to. Raises ValueError for an unsaved row (no pk yet)."""
    if response.pk is None or response.created_at is None:
        raise ValueError("only a stored Response has a file name")
    kind = "callback" if response.kind == Response.Kind.CALLBACK else "response"
    stamp = response.created_at.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    return f"telegram_{kind}_{response.user_id}_{stamp}_{response.pk}.json"


def payload(response: Response) -> dict:
    """The file's JSON object. Reads ``response.event``: call it where the database may be used."""
    event = response.event
    common = {
        "timestamp": response.created_at.isoformat(),
        "user_id": response.user_id,
        "username": response.username or None,
        "first_name": response.first_name or None,
    }
    linked = {
        "event_id": event.event_id if event is not None else None,
        "task_id": response.task_id or None,
    }
    if response.kind == Response.Kind.MESSAGE:
        return {
            **common,
            "message_text": response.message_text,
            "message_type": response.message_type or "text",
            **linked,
        }
    return {
        **common,
        "callback_data": response.callback_data,
        "original_message_id": response.original_message_id,
        "response_type": "callback_query",
        **linked,
        "decision": response.decision or None,
    }


def write_atomically(folder: Path, name: str, content: bytes) -> None:
    """Write ``folder/name`` so that readers see either nothing or the whole file. Raises OSError.

    No fsync: the file is a notification mirrored by its database row, and a sync costs milliseconds per file on
    the path a waiting agent measures; after a power loss the sweep cannot tell, but the row still holds it.
    """
    temp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temp, "xb") as handle:
            handle.write(content)
        os.replace(temp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def write_files(folder: Path, rendered: list[Rendered]) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """Write each file; returns ([(pk, name) written], {pk: why not}). Pure file I/O, safe in any thread."""
    written: list[tuple[int, str]] = []
    failed: dict[int, str] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = f"cannot create {folder}: {error.strerror or error}"
        return [], {pk: reason for pk, _, _ in rendered}
    for pk, name, content in rendered:
        try:
            write_atomically(folder, name, content)
        except OSError as error:
            failed[pk] = f"cannot write {folder / name}: {error.strerror or error}"
        else:
            written.append((pk, name))
    return written, failed


class ResponseWriter:
    """Stores responses and writes their files, many per wake-up.

    ``submit`` queues a Response (saved or not); once ``start``-ed, a task takes everything queued and, in one
    trip to the database thread, inserts the new rows in one statement, writes all files, and records the
    results in one more statement. Not started (the webhook view, a one-off step), ``submit`` writes at once. ``flush`` waits
    until everything submitted is stored and written (or failed, recorded in ``file_error``).
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Response] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._failure: Exception | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="response writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        # A failed batch was logged when it failed; its updates are fetched again after the restart.
        with contextlib.suppress(Exception):
            await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, response: Response) -> None:
        if self._task is None:
            await self.write([response])
        else:
            self._queue.put_nowait(response)

    async def flush(self) -> None:
        """Wait until everything submitted is stored and written; raises the error of a batch that could not
        be stored since the last flush (its responses exist nowhere: the caller must not confirm them)."""
        if self._task is not None:
            await self._queue.join()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def write(self, batch: list[Response]) -> None:
        """Store the unsaved rows of ``batch`` and write every file now, in one trip to the database thread (the
        files are small and written without fsync: cheaper there than two more hops between threads). Raises
        DatabaseError if storing fails."""
        await sync_to_async(write_now)(batch)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.write(batch)
            except Exception as error:
                # Kept for flush(): the poller flushes before it moves its offset, so the updates behind these
                # responses are fetched and handled again.
                logger.exception("storing %d responses failed", len(batch))
                self._failure = error
            finally:
                for _ in batch:
                    self._queue.task_done()


def write_now(batch: list[Response]) -> None:
    """``ResponseWriter.write`` in the calling thread, for sync code that is already off the event loop (the one
    file an agent is waiting for, a decision, is written in the same trip as the decision, not queued)."""
    rendered = _store_and_render(batch)
    folder = responses_dir()
    written, failed = write_files(folder, rendered)
    _report(folder, failed)
    _record(written, failed)


def _report(folder: Path, failed: dict[int, str]) -> None:
    if failed:
        logger.error(
            "%d response file(s) not written to %s (%s); they are kept in the database and written as soon as "
            "the folder is writable",
            len(failed),
            folder,
            next(iter(failed.values())),
        )


def _store_and_render(batch: list[Response]) -> list[Rendered]:
    new = [r for r in batch if r.pk is None]
    for response in new:
        response.file_error = PENDING
    if new:
        Response.objects.bulk_create(new)
    return [(r.pk, file_name(r), _encode(r)) for r in batch]


def _encode(response: Response) -> bytes:
    return json.dumps(payload(response), ensure_ascii=False, indent=2).encode()


def _record(written: list[tuple[int, str]], failed: dict[int, str]) -> None:
    rows = [Response(pk=pk, file_name=name, file_error="") for pk, name in written]
    rows += [Response(pk=pk, file_name="", file_error=reason) for pk, reason in failed.items()]
    if rows:
        Response.objects.bulk_update(rows, ["file_name", "file_error"])


def unwritten(limit: int = RETRY_BATCH) -> list[Response]:
    """Rows whose file is still missing: failed ones, and PENDING ones whose writer is evidently gone."""
    stale = timezone.now() - PENDING_GRACE
    return list(
        Response.objects.filter(
            Q(file_error=PENDING, created_at__lt=stale) | ~Q(file_error__in=("", PENDING))
        )
        .select_related("event")
        .order_by("pk")[:limit]
    )


async def retry_unwritten(writer: ResponseWriter) -> int:
    """Write the files still missing; returns how many were tried. Safe with several workers at once: a file's
    name and content derive from its row, so two workers retrying the same row write the same file."""
    rows = await sync_to_async(unwritten)()
    if rows:
        await writer.write(rows)
    return len(rows)

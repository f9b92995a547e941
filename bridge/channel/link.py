"""One Claude Code session attached as a channel: its share of the inbox pushed in, its permission prompts out.

`ChannelLink.start` registers the session (bridge.channel.inbox) once Claude Code has finished the handshake,
and runs one loop until the connection closes. Each turn it

- answers permission requests whose approval has been decided (bridge.channel.relay), first: the owner has
  just pressed a button and Claude Code is waiting;
- (once, at start) opens its topic in the channel forum, if there is one (bridge.channel.topics);
- writes the messages it holds as ``notifications/claude/channel`` notifications, oldest first, marking each
  delivered only once written (a write to a closed connection gives them back): those the bridge handed to it
  as they arrived (one read), and, at start and when a timed poll finds any, those waiting for a session;
- beats its heartbeat and gives back the claims of dead sessions, every HEARTBEAT_SECONDS;

then sleeps until the bridge pokes it (bridge.channel.wake: a message stored for it, an approval of its decided),
a permission request arrives, or the poll period ends (POLL_SECONDS, or PENDING_POLL_SECONDS while a permission
prompt is open). The polls are the fallback for a lost poke or a bridge on another machine, not the way in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import anyio
from asgiref.sync import sync_to_async

from bridge.channel import inbox, relay, topics, wake
from bridge.models import ChannelMessage, ChannelSession

logger = logging.getLogger(__name__)

CHANNEL_METHOD = "notifications/claude/channel"
PENDING_POLL_SECONDS = 0.1
"""The poll while a permission prompt is open: the decision normally arrives as a poke from the bridge."""


def session_name() -> str:
    """CC_TELEGRAM_SESSION, else the name of the folder Claude Code runs in."""
    name = os.environ.get("CC_TELEGRAM_SESSION") or Path.cwd().name or "claude"
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)[:80] or "claude"


def notification(message: ChannelMessage) -> dict[str, Any]:
    """The params of a channel notification: the text, and identifiers only in meta (Claude Code drops keys
    that are not ``[A-Za-z0-9_]+``)."""
    meta = {
        "chat_id": str(message.chat_id),
        "message_id": str(message.message_id),
        "user": message.username or message.first_name or str(message.user_id),
        "user_id": str(message.user_id),
        "ts": message.sent_at.isoformat(),
    }
    if message.thread_id is not None:
        meta["thread_id"] = str(message.thread_id)
    for index, path in enumerate(message.attachments, start=1):
        meta[f"attachment_{index}"] = str(path)
    return {"content": message.text, "meta": meta}


class ChannelLink:
    def __init__(self, outbound: Any, store: Any, outgoing: Any = None, name: str | None = None) -> None:
        """``outbound``: the connection's channel for server-initiated messages (``notify(method, params)``,
        raising when the connection is closed); ``store``: a callable returning the EventStore."""
        self.outbound = outbound
        self.store = store
        self.outgoing = outgoing
        self.name = name or session_name()
        self.session: ChannelSession | None = None
        self.bell = wake.Bell()
        self.pending: dict[str, str] = {}  # event_id -> request_id
        self._task: asyncio.Task | None = None
        self._side_tasks: set[asyncio.Task] = set()  # typing indicators: kept referenced until done
        self._closed = False

    async def start(self) -> ChannelSession:
        port = await self.bell.open()
        self.session = await sync_to_async(inbox.register)(
            self.name, cwd=os.getcwd(), hostname=socket.gethostname(), pid=os.getpid(), wake_port=port
        )
        logger.info("channel session %s attached", self.session.name)
        self._task = asyncio.create_task(self._run(), name=f"channel-{self.session.name}")
        return self.session

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.bell.close()
        if self.session is not None:
            await sync_to_async(inbox.close)(self.session.pk)
            logger.info("channel session %s detached", self.session.name)

    # --- permission requests ---------------------------------------------------------------------------------
    async def permission_request(self, request: relay.PermissionRequest) -> None:
        """Relay a permission prompt to Telegram. Never raises: a prompt that cannot be relayed is still
        answerable in the terminal."""
        try:
            event_id = await relay.ask(
                self.store(), request, self.name if self.session is None else self.session.name
            )
        except Exception:
            logger.exception("could not relay permission request %s", request.request_id)
            return
        self.pending[event_id] = request.request_id
        self.bell.poke()

    # --- the loop --------------------------------------------------------------------------------------------
    def topic_for(self, chat_id: int) -> int | None:
        """This session's forum topic when ``chat_id`` is the channel forum: where its replies there go."""
        session = self.session
        if session is None or session.topic_id is None or chat_id != session.forum_chat_id:
            return None
        return session.topic_id

    async def _run(self) -> None:
        if self.outgoing is not None:
            await topics.open_for(self.session, self.outgoing)
        beat = time.monotonic()
        start, poked = True, True
        while not self._closed:
            try:
                if self.pending:
                    await self.verdicts_once()
                # At start: whatever waited for a session. A poke means the bridge handed this session a message
                # (or decided an approval): no claim needed. A timed poll looks for messages no session holds
                # (stored while none was live, or given back) with one cheap read first.
                claim = start or (not poked and await sync_to_async(inbox.waiting)())
                await self.deliver_once(claim=claim)
                start = False
                if time.monotonic() - beat >= inbox.HEARTBEAT_SECONDS:
                    beat = time.monotonic()
                    await sync_to_async(_beat)(self.session.pk)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            except Exception:
                logger.exception("channel session %s: a step failed; retrying", self.name)
            poked = await self.bell.wait(PENDING_POLL_SECONDS if self.pending else wake.POLL_SECONDS)

    async def deliver_once(self, claim: bool = True) -> int:
        """Push this session's messages; returns how many. Raises when the connection is closed (what was taken
        and not written is given back first). With ``claim``, it also takes its share of the waiting ones."""
        delivered = await self._push(await sync_to_async(inbox.assigned)(self.session.pk))
        if claim:
            delivered += await self._push(await sync_to_async(inbox.claim)(self.session))
        return delivered

    async def _push(self, messages: list[ChannelMessage]) -> int:
        delivered = 0
        chats: set[int] = set()
        for message in messages:
            try:
                await self.outbound.notify(CHANNEL_METHOD, notification(message))
            except BaseException:
                await sync_to_async(inbox.release)(self.session.pk)
                raise
            await sync_to_async(inbox.mark_delivered)(message.pk, self.session.pk)
            delivered += 1
            chats.add(message.chat_id)
        if self.outgoing is not None:
            for chat_id in chats:
                task = asyncio.create_task(self.outgoing.typing(chat_id, self.topic_for(chat_id)))
                self._side_tasks.add(task)
                task.add_done_callback(self._side_tasks.discard)
        return delivered

    async def verdicts_once(self) -> int:
        decided = await sync_to_async(relay.verdicts)(list(self.pending))
        for event_id, behavior in decided.items():
            request_id = self.pending.pop(event_id)
            if behavior == "expired":
                logger.info("permission request %s expired unanswered in Telegram", request_id)
                continue
            await self.outbound.notify(relay.VERDICT_METHOD, {"request_id": request_id, "behavior": behavior})
        return len(decided)


def _beat(session_pk: int) -> None:
    inbox.heartbeat(session_pk)
    inbox.release_stale()

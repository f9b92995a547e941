"""Forum topics: in the channel forum (CC_TELEGRAM_CHANNEL_FORUM), a topic per session.

With several sessions at once, a topic each is the easiest way to talk to one: what the owner writes in a
session's topic goes to that session (bridge.channel.inbox.route), no mention and no ``/to`` needed, and the
session's replies to the forum go into its topic. A session that attaches again under the same name (the same
project folder, or CC_TELEGRAM_SESSION) takes its old topic back, so one project keeps one thread.

The forum must be a supergroup with topics on, an active Recipient, where the bot may manage topics. When the
topic cannot be opened the session runs without one (the forum's messages then follow the ordinary rules).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from django.conf import settings

from bridge.models import ChannelSession, Recipient

if TYPE_CHECKING:
    from bridge.channel.outgoing import Outgoing

logger = logging.getLogger(__name__)


async def open_for(session: ChannelSession, outgoing: Outgoing) -> int | None:
    """Give ``session`` its topic in the channel forum (its earlier one, else a new one) and record it on the
    session (``forum_chat_id``, ``topic_id``, in the database and on ``session``); returns the topic's
    message_thread_id, or None when there is no forum or the topic cannot be opened. Never raises."""
    forum = settings.CC_TELEGRAM_CHANNEL_FORUM
    if not forum:
        return None
    try:
        if not await Recipient.objects.filter(chat_id=forum, active=True).aexists():
            logger.warning("CC_TELEGRAM_CHANNEL_FORUM %s is not an active recipient: no topic opened", forum)
            return None
        topic_id = await sync_to_async(earlier_topic)(forum, session.name)
        if topic_id is None:
            topic_id = await outgoing.open_topic(forum, session.name)
        await ChannelSession.objects.filter(pk=session.pk).aupdate(forum_chat_id=forum, topic_id=topic_id)
    except Exception as error:
        logger.warning("could not open a forum topic for channel session %s: %s", session.name, error)
        return None
    session.forum_chat_id, session.topic_id = forum, topic_id
    return topic_id


def earlier_topic(forum: int, name: str) -> int | None:
    """The topic the last session called ``name`` had in ``forum``, if any."""
    return (
        ChannelSession.objects.filter(forum_chat_id=forum, name=name)
        .exclude(topic_id=None)
        .order_by("-started_at", "-pk")
        .values_list("topic_id", flat=True)
        .first()
    )

"""Events as Telegram messages: one event, a digest of many, and an approval after its decision or expiry.

Messages use parse mode HTML (escape.PARSE_MODE). Every text that came with an event goes through escape_html,
so no event can make Telegram answer "can't parse entities" or inject formatting. A message whose visible text
is over 4,096 UTF-16 units is split into numbered parts (split.split_html); the keyboard goes on the last part.
Approval requests show the agent's real prompt and options. Nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.events.catalog import lookup
from bridge.events.schema import Event
from bridge.telegram.escape import MAX_TEXT_UTF16, PARSE_MODE, escape_html, utf16_len, visible_text
from bridge.telegram.event_fields import field_lines
from bridge.telegram.keyboards import Keyboard, api_rows, approval_options, keyboard_for
from bridge.telegram.split import split_html

STYLES = ("concise", "detailed")
_LABELS = {"api_call": "API call"}
_DECISIONS = {
    "approved": ("✅", "Approved"),
    "approve": ("✅", "Approved"),
    "denied": ("❌", "Denied"),
    "deny": ("❌", "Denied"),
    "always": ("🔓", "Allowed for this session"),
    "acknowledged": ("👍", "Acknowledged"),
    "ack": ("👍", "Acknowledged"),
    "timeout": ("⌛", "Expired"),
    "expired": ("⌛", "Expired"),
}


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered event: `parts` to send in order (each within Telegram's limit, valid on its own) with
    `parse_mode`; `keyboard` (rows of keyboards.Button, maybe empty) belongs on the LAST part only."""

    parts: list[str]
    keyboard: Keyboard = field(default_factory=list)
    parse_mode: str = PARSE_MODE

    @property
    def markup(self) -> list[list[dict[str, str]]] | None:
        """The keyboard as Bot API rows (keyboards.api_rows), None when there are no buttons."""
        return api_rows(self.keyboard)

    def messages(self) -> list[tuple[str, Keyboard | None]]:
        """(text, keyboard or None) for each part: the keyboard only with the last one."""
        last = len(self.parts) - 1
        return [(part, self.keyboard or None if i == last else None) for i, part in enumerate(self.parts)]


def render(event: Event, *, style: str = "concise", tz: str = "UTC", token: str | None = None) -> Rendered:
    """`event` as a message in `style` ("concise" or "detailed") with times in IANA zone `tz` (an unknown zone
    falls back to UTC: a message is better late-labelled than lost). `token` is passed to keyboards.keyboard_for
    (see there). Raises ValueError for an unknown `style` or a malformed `token`; never for event content."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, not {style!r}")
    keyboard = keyboard_for(event, token)
    return Rendered(split_html(event_html(event, style=style, tz=tz)), keyboard)


def event_html(event: Event, *, style: str, tz: str) -> str:
    """The whole message for `event` as one HTML string, before any splitting."""
    detailed = style == "detailed"
    lines = [_headline(event)]
    if not event.info.known:
        lines.append(f"Unknown event type <code>{escape_html(event.type)}</code>")
    if event.is_approval:
        lines.extend(_approval(event))
    elif event.description.strip():
        lines.extend(["", escape_html(event.description)])
    fields = field_lines(event, style)
    if fields:
        lines.extend(["", *fields])
    lines.extend(["", _footer(event, tz, detailed)])
    return "\n".join(lines)


def render_digest(events: list[Event], *, tz: str = "UTC") -> list[str]:
    """One digest of `events` (HTML parts, split when long): a headline with the count and time span, then the
    events grouped by type in order of first appearance, each group with its count and every event's emoji,
    title and time. An empty list gives a one-line "nothing to report" digest."""
    zone = _zone(tz)
    groups: dict[str, list[Event]] = {}
    for event in events:
        groups.setdefault(event.type, []).append(event)
    lines = [f"📬 <b>Digest: {len(events)} event{'s' if len(events) != 1 else ''}</b>"]
    if events:
        times = sorted(_local(e.timestamp, zone) for e in events)
        span = f"{times[0]:%H:%M}–{times[-1]:%H:%M}" if times[0] != times[-1] else f"{times[0]:%H:%M}"
        lines.append(f"<i>{span} {escape_html(_zone_name(times[0]))}</i>")
    else:
        lines.append("Nothing to report.")
    for type_name, members in groups.items():
        lines.extend(["", f"<b>{escape_html(type_label(type_name))}</b> ({len(members)})"])
        lines.extend(
            f"{e.emoji} {escape_html(e.title)} <i>{_local(e.timestamp, zone):%H:%M}</i>" for e in members
        )
    return split_html("\n".join(lines))


def render_decision(event: Event, decision: str, who: str, when: datetime, tz: str = "UTC") -> str:
    """The text that replaces an approval message once decided: its headline and prompt, then e.g.
    "✅ Approved by @alice at 14:03 CET". `decision` is approved/denied/always/acknowledged/timeout (or the
    action names approve/deny/ack), or any other chosen option's label; `who` is shown as given.
    Always one message: a prompt too long to fit is shortened with a visible note, never silently."""
    emoji, verb = _DECISIONS.get(decision.lower(), ("☑️", f"Chose “{decision}”"))
    stamp = _local(when, _zone(tz))
    outcome = f"{emoji} <b>{escape_html(verb)}</b> by {escape_html(who)} at {stamp:%H:%M} {_zone_name(stamp)}"
    return _closed_approval(event, outcome)


def render_expired(event: Event, *, when: datetime | None = None, tz: str = "UTC") -> str:
    """The text that replaces an approval message nobody answered in time (same layout as render_decision)."""
    at = ""
    if when is not None:
        stamp = _local(when, _zone(tz))
        at = f" at {stamp:%H:%M} {_zone_name(stamp)}"
    return _closed_approval(event, f"⌛ <b>Expired</b>{at}: no answer in time, so nothing was approved.")


def type_label(type_name: str) -> str:
    """An event type as people say it (task_completion: "Task completion"); unknown types keep their raw name."""
    if type_name in _LABELS:
        return _LABELS[type_name]
    return type_name.replace("_", " ").capitalize() if lookup(type_name).known else type_name


def _headline(event: Event) -> str:
    return f"{event.emoji} <b>{escape_html(event.title)}</b>"


def _prompt(event: Event) -> str:
    prompt = event.data.get("approval_prompt") if isinstance(event.data, dict) else None
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    return event.description


def _approval(event: Event) -> list[str]:
    """The agent's own request and options; the description too when it says something the prompt does not."""
    prompt = _prompt(event)
    lines = []
    if event.description.strip() and event.description.strip() != prompt.strip():
        lines.extend(["", escape_html(event.description)])
    if prompt.strip():
        lines.extend(["", "<b>Request:</b>", f"<blockquote>{escape_html(prompt)}</blockquote>"])
    options = " · ".join(f"{i}. {escape_html(label)}" for i, label in enumerate(approval_options(event), 1))
    lines.extend(["", f"<b>Options:</b> {options}"])
    return lines


def _closed_approval(event: Event, outcome: str) -> str:
    head = [_headline(event)]
    tail = ["", outcome]
    prompt = _prompt(event)
    room = MAX_TEXT_UTF16 - utf16_len(visible_text("\n".join([*head, "", "Request:", "", *tail]))) - 80
    if prompt.strip():
        shown = prompt
        if utf16_len(prompt) > room:
            shown = _shorten(prompt, room)
            omitted = len(prompt) - len(shown)
            shown += f"\n… ({omitted} more characters, shown in full in the original request)"
        head.extend(["", "<b>Request:</b>", f"<blockquote>{escape_html(shown)}</blockquote>"])
    return "\n".join(head + tail)


def _shorten(text: str, units: int) -> str:
    """The longest prefix of `text` of at most `units` UTF-16 units."""
    low, high = 0, min(len(text), units)
    while low < high:
        mid = (low + high + 1) // 2
        if utf16_len(text[:mid]) <= units:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def _footer(event: Event, tz: str, detailed: bool) -> str:
    stamp = _local(event.timestamp, _zone(tz))
    when = f"{stamp:%Y-%m-%d %H:%M:%S}" if detailed else f"{stamp:%Y-%m-%d %H:%M}"
    pieces = [event.source]
    if event.task_id:
        pieces.append(f"task {event.task_id}")
    pieces.append(f"{when} {_zone_name(stamp)}")
    footer = f"<i>{escape_html(' · '.join(pieces))}</i>"
    if not detailed:
        return footer
    extra = [f"{type_label(event.type)} ({event.category})", f"priority {event.priority.label}"]
    extra.append(f"event {event.event_id}")
    extra.extend(f"{name.replace('_', ' ')} {value}" for name, value in _optional(event))
    return footer + f"\n<i>{escape_html(' · '.join(extra))}</i>"


def _optional(event: Event) -> Iterable[tuple[str, object]]:
    for name in ("correlation_id", "parent_event_id", "processing_status", "schema_version"):
        value = getattr(event, name)
        if value:
            yield name, value
    if event.retry_count:
        yield "retry_count", event.retry_count


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return ZoneInfo("UTC")


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)


def _zone_name(moment: datetime) -> str:
    return moment.tzname() or "UTC"

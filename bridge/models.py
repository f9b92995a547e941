"""The bridge's data: runtime settings, recipients, what came in, what went out, what came back, and who did what."""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import F

from bridge.events.limits import DEFAULT_LIMITS, Limits
from bridge.events.priority import Priority


def _range(low: int | float, high: int | float) -> list:
    return [MinValueValidator(low), MaxValueValidator(high)]


# The environment gives the settings row its first values (the row is created with them); from then on the row is
# what counts, so a value an operator saves in the admin wins over the environment. Callables: read when the row
# is created, never at import.
def environment_timezone() -> str:
    return settings.CC_TELEGRAM_TIMEZONE


def environment_message_style() -> str:
    return settings.CC_TELEGRAM_MESSAGE_STYLE


class Mode(models.TextChoices):
    LOCAL = "local", "local: deliver everything"
    NOMAD = "nomad", "nomad: deliver everything, answer replies with a menu"
    MUTED = "muted", "muted: only approvals and critical alerts"


class UpdatesMode(models.TextChoices):
    POLLING = "polling", "polling: one worker long-polls getUpdates"
    WEBHOOK = "webhook", "webhook: Telegram posts updates to the web process"


class MessageStyle(models.TextChoices):
    CONCISE = "concise", "concise"
    DETAILED = "detailed", "detailed"


PRIORITY_CHOICES = [(p.value, p.label) for p in Priority]


class BridgeSettings(models.Model):
    """The one row of knobs an operator tunes while the bridge runs.

    Every save bumps ``version``; workers compare it with the version they applied, so a change reaches them even
    when the "settings changed" channel message is lost.
    """

    SINGLETON_PK = 1

    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # Delivery behaviour
    mode = models.CharField(
        max_length=8,
        choices=Mode.choices,
        default=Mode.LOCAL,
        help_text="muted records everything but sends only approvals and critical alerts.",
    )
    message_style = models.CharField(
        max_length=8,
        choices=MessageStyle.choices,
        default=environment_message_style,
        help_text="detailed shows every known data field; concise keeps messages short enough to read on a lock "
        "screen. Starts as CC_TELEGRAM_MESSAGE_STYLE; the value saved here wins over it.",
    )
    timezone = models.CharField(
        max_length=64,
        default=environment_timezone,
        help_text="IANA zone used for times shown in messages, e.g. Europe/Berlin. Starts as CC_TELEGRAM_TIMEZONE; "
        "the value saved here wins over it.",
    )
    approval_timeout_seconds = models.PositiveIntegerField(
        default=600,
        validators=_range(10, 86_400),
        help_text="How long an approval waits for an answer before it expires and the agent falls back to its own prompt.",
    )
    session_grant_seconds = models.PositiveIntegerField(
        default=3600,
        validators=_range(60, 604_800),
        help_text="How long “Allow for this session” lets the same tool run in the same Claude Code session without "
        "asking again. Longer means fewer interruptions and less oversight.",
    )
    updates_mode = models.CharField(
        max_length=8,
        choices=UpdatesMode.choices,
        default=UpdatesMode.POLLING,
        help_text="How button presses and replies arrive. polling works anywhere (no public address) and costs one "
        "held connection; webhook needs TELEGRAM_WEBHOOK_URL (public HTTPS) and TELEGRAM_WEBHOOK_SECRET, and "
        "answers arrive at the web process without polling delay.",
    )

    # Compression
    compression_level = models.PositiveSmallIntegerField(
        default=3,
        validators=_range(1, 22),
        help_text="zstd level for queued payloads. Higher saves Redis memory but costs CPU: level 3 compresses a "
        "300 KB event in ~2 ms, level 6 in ~4 ms, level 19 in hundreds of ms.",
    )
    compression_min_bytes = models.PositiveIntegerField(
        default=4096,
        validators=_range(0, 10_485_760),
        help_text="Payloads smaller than this are stored as they are: compressing tiny events costs more than it saves.",
    )
    compression_timeout_ms = models.PositiveIntegerField(
        default=5000,
        validators=_range(10, 60_000),
        help_text="Compression taking longer than this is abandoned and the payload stored uncompressed.",
    )

    # Cache
    cache_max_entries = models.PositiveIntegerField(
        default=500,
        validators=_range(10, 1_000_000),
        help_text="Entries in the in-process (L1) cache. More entries: fewer database and Redis reads, more memory.",
    )
    cache_ttl_seconds = models.PositiveIntegerField(
        default=1800,
        validators=_range(1, 86_400),
        help_text="How long a cached recipient, setting or template may be served before it is read again.",
    )
    cache_validate_checksums = models.BooleanField(
        default=False,
        help_text="Check a checksum on every L2 (Redis) cache read: detects corruption at the cost of CPU per read.",
    )

    # Rate limits
    rate_global_per_second = models.FloatField(
        default=30.0,
        validators=_range(0.1, 1000),
        help_text="Messages per second across all chats. Telegram allows about 30; above it answers 429.",
    )
    rate_per_chat_per_second = models.FloatField(
        default=1.0,
        validators=_range(0.01, 100),
        help_text="Messages per second to one private chat. Telegram tolerates short bursts over 1/s, not more.",
    )
    rate_per_group_per_minute = models.FloatField(
        default=20.0,
        validators=_range(0.1, 1000),
        help_text="Messages per minute to one group chat. Telegram's limit is 20.",
    )
    rate_adaptive = models.BooleanField(
        default=True,
        help_text="After a 429, lower the rate for that chat and raise it back slowly.",
    )

    # Pipeline
    pipeline_capacity = models.PositiveIntegerField(
        default=100,
        validators=_range(1, 100_000),
        help_text="Items held between pipeline stages. Larger absorbs bursts; smaller bounds memory.",
    )
    backpressure_threshold = models.PositiveIntegerField(
        default=80,
        validators=_range(1, 100),
        help_text="Percent of pipeline capacity at which the watcher stops reading new files until the sender catches up.",
    )
    queue_batch_size = models.PositiveIntegerField(
        default=100,
        validators=_range(1, 10_000),
        help_text="Events enqueued or claimed per round trip. Larger batches mean fewer round trips but later first delivery.",
    )

    # Retries
    retry_attempts = models.PositiveSmallIntegerField(
        default=5,
        validators=_range(0, 100),
        help_text="Attempts for a failing delivery before it becomes a dead letter.",
    )
    retry_base_delay_ms = models.PositiveIntegerField(
        default=1000,
        validators=_range(10, 600_000),
        help_text="First retry delay; it doubles each attempt (with jitter).",
    )
    retry_max_delay_ms = models.PositiveIntegerField(
        default=30_000,
        validators=_range(100, 3_600_000),
        help_text="Upper bound for the delay between retries.",
    )

    # Circuit breaker
    breaker_failure_threshold = models.PositiveSmallIntegerField(
        default=5,
        validators=_range(1, 1000),
        help_text="Failures within the window that open the breaker and pause all sends.",
    )
    breaker_window_seconds = models.PositiveIntegerField(
        default=60, validators=_range(1, 3600), help_text="Window over which failures are counted."
    )
    breaker_open_seconds = models.PositiveIntegerField(
        default=30,
        validators=_range(1, 3600),
        help_text="First open period; it doubles each time the breaker opens again, up to ten times this.",
    )
    breaker_half_open_successes = models.PositiveSmallIntegerField(
        default=2,
        validators=_range(1, 100),
        help_text="Successful trial sends needed to close the breaker again.",
    )

    # Watcher and digests
    watcher_debounce_ms = models.PositiveIntegerField(
        default=2,
        validators=_range(0, 5000),
        help_text="How long the watcher gathers file changes before acting. Low means fast delivery; high means "
        "fewer wake-ups during floods.",
    )
    watcher_step_ms = models.PositiveIntegerField(
        default=1,
        validators=_range(1, 1000),
        help_text="How often the watcher checks for changes while gathering (ms).",
    )
    digest_threshold = models.PositiveIntegerField(
        default=10,
        validators=_range(2, 10_000),
        help_text="When this many normal or low priority messages wait for one chat, they are merged into one digest.",
    )

    # Event limits: what the watcher accepts; a file past them is quarantined in events/failed/ with the reason.
    event_max_bytes = models.PositiveIntegerField(
        default=DEFAULT_LIMITS.max_file_bytes,
        validators=_range(1024, 64 * 1_048_576),
        help_text="Largest event file, in bytes. Larger lets agents send big logs and diffs; every accepted byte is "
        "held in memory while parsed, stored in the queue and split into Telegram messages of 4,096 characters.",
    )
    event_max_description = models.PositiveIntegerField(
        default=DEFAULT_LIMITS.max_description,
        validators=_range(100, 1_000_000),
        help_text="Longest description, in characters. 100,000 characters already take about 25 Telegram messages.",
    )
    event_max_depth = models.PositiveSmallIntegerField(
        default=DEFAULT_LIMITS.max_depth,
        validators=_range(2, 100),
        help_text="Deepest nesting of objects and lists in an event (the event itself is level 1, its data level "
        "2). The bound protects the parser's stack from hostile files.",
    )

    # Auto-tuning
    autotune_enabled = models.BooleanField(
        default=False, help_text="Let the auto-tuner adjust compression, cache and rate within bounds."
    )
    autotune_p99_latency_ms = models.PositiveIntegerField(
        default=50,
        validators=_range(1, 60_000),
        help_text="Target p99 end-to-end latency; above it the tuner lowers the compression level.",
    )
    autotune_memory_budget_mb = models.PositiveIntegerField(
        default=200,
        validators=_range(32, 65_536),
        help_text="Memory budget; above it the tuner shrinks the cache.",
    )

    class Meta:
        verbose_name = "bridge settings"
        verbose_name_plural = "bridge settings"

    def __str__(self) -> str:
        return f"Bridge settings (version {self.version})"

    def save(self, *args, **kwargs) -> None:
        self.pk = self.SINGLETON_PK
        if not self._state.adding or BridgeSettings.objects.filter(pk=self.pk).exists():
            # F() keeps the version strictly increasing even when two admins save at once.
            self.version = F("version") + 1
        super().save(*args, **kwargs)
        self.refresh_from_db(fields=["version"])
        # Running workers drop their cached copy on the "settings changed" message; a worker started later must not
        # find the old row in the shared cache tier either (its message went to nobody). Dropped now, not on commit:
        # a worker reading the row meanwhile gets the old one either way, and is told of the change after the commit.
        from bridge.cache import forget_shared

        forget_shared(self.cache_key())

    def delete(self, *args, **kwargs):
        raise ValidationError("Bridge settings cannot be deleted; change their values instead.")

    def clean(self) -> None:
        super().clean()
        if self.retry_max_delay_ms < self.retry_base_delay_ms:
            raise ValidationError(
                {"retry_max_delay_ms": "The maximum retry delay must be at least the base delay."}
            )
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": f"{self.timezone!r} is not an IANA time zone."}) from None

    @classmethod
    def load(cls) -> BridgeSettings:
        """The row, created on first use with the defaults (timezone and message style from the environment)."""
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return obj

    @classmethod
    def cache_key(cls) -> str:
        """The row's key in the workers' cache. It names the fields: a row cached by code with other fields (another
        release, during a rolling upgrade) is never read as this one, with fields missing."""
        names = ",".join(f.attname for f in cls._meta.concrete_fields)
        return f"settings:{hashlib.blake2b(names.encode(), digest_size=6).hexdigest()}"

    def event_limits(self) -> Limits:
        """What the watcher accepts under these settings."""
        return Limits(
            max_file_bytes=self.event_max_bytes,
            max_description=self.event_max_description,
            max_depth=self.event_max_depth,
        )

    def as_dict(self) -> dict:
        """Every knob by name, for audit entries and for workers."""
        return {
            f.name: getattr(self, f.name)
            for f in self._meta.concrete_fields
            if f.name not in ("id", "updated_at")
        }


class Recipient(models.Model):
    """A Telegram user or chat that receives events; only active recipients are heard and sent to."""

    class Role(models.TextChoices):
        APPROVER = "approver", "approver: receives and decides approvals"
        VIEWER = "viewer", "viewer: receives, cannot decide"

    chat_id = models.BigIntegerField(
        unique=True, help_text="Telegram user id, or chat id for groups (negative)."
    )
    display_name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.APPROVER)
    sources = models.CharField(
        max_length=500,
        blank=True,
        help_text="Comma-separated projects/sources to receive; empty receives all.",
    )
    categories = models.JSONField(
        default=list, blank=True, help_text="Event categories to receive; empty receives all."
    )
    min_priority = models.PositiveSmallIntegerField(
        choices=PRIORITY_CHOICES,
        default=Priority.LOW,
        help_text="Events below this priority are not sent here.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("chat_id",)

    def __str__(self) -> str:
        return self.display_name or str(self.chat_id)

    @property
    def is_group(self) -> bool:
        return self.chat_id < 0

    def source_list(self) -> list[str]:
        return [s.strip() for s in self.sources.split(",") if s.strip()]


class Event(models.Model):
    """One event as it came in (file, MCP tool, hook or shell), stored before anything is sent."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        PROCESSING = "processing", "processing"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    event_id = models.CharField(max_length=128, unique=True)
    type = models.CharField(max_length=64, db_index=True)
    category = models.CharField(max_length=32, db_index=True)
    source = models.CharField(max_length=200, default="claude-code")
    task_id = models.CharField(max_length=200, blank=True, db_index=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    priority = models.PositiveSmallIntegerField(
        choices=PRIORITY_CHOICES, default=Priority.NORMAL, db_index=True
    )
    origin = models.CharField(max_length=16, default="file", help_text="file, mcp, hook or shell")
    timestamp = models.DateTimeField(help_text="When the agent says it happened.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)

    class Meta:
        ordering = ("-received_at",)

    def __str__(self) -> str:
        return f"{self.type}: {self.title}"


class Delivery(models.Model):
    """One event to one recipient: the unit that is sent, retried, dead-lettered or suppressed."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        DEAD = "dead", "dead letter"
        SUPPRESSED = "suppressed", "suppressed"
        DIGESTED = "digested", "merged into a digest"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    message_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    latency_ms = models.FloatField(
        null=True, blank=True, help_text="From the event's arrival to Telegram's answer."
    )

    class Meta:
        ordering = ("-created_at",)
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=("event", "recipient"), name="one_delivery_per_recipient")
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.recipient_id}: {self.status}"


class Response(models.Model):
    """A button press or text reply from Telegram, mirrored by a response file."""

    class Kind(models.TextChoices):
        CALLBACK = "callback_query", "button press"
        MESSAGE = "message", "text reply"

    class Decision(models.TextChoices):
        NONE = "", "none"
        APPROVED = "approved", "approved"
        DENIED = "denied", "denied"
        ACKNOWLEDGED = "acknowledged", "acknowledged"
        DETAILS = "details", "details requested"
        TIMEOUT = "timeout", "timed out"
        ANSWERED = "answered", "another option chosen"

    event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="responses"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    user_id = models.BigIntegerField(db_index=True)
    username = models.CharField(max_length=200, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    callback_data = models.CharField(max_length=64, blank=True)
    message_text = models.TextField(blank=True)
    message_type = models.CharField(
        max_length=16,
        blank=True,
        help_text="text, or other for a message without text (its caption is kept).",
    )
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True, db_index=True)
    task_id = models.CharField(max_length=200, blank=True, db_index=True)
    original_message_id = models.BigIntegerField(null=True, blank=True)
    file_name = models.CharField(max_length=255, blank=True, help_text="The response file written, if any.")
    file_error = models.TextField(blank=True, help_text="Why the response file could not be written yet.")
    update_id = models.BigIntegerField(
        null=True,
        blank=True,
        db_index=True,
        help_text="Telegram's update id: an update seen twice is handled once.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.kind} from {self.user_id}: {self.decision or self.message_text[:40]}"


class AuditEntry(models.Model):
    """Who changed what and when; also refused access attempts and quarantined files."""

    actor = models.CharField(
        max_length=200, help_text="A username, 'telegram:<id>', 'auto-tuner' or 'bridge'."
    )
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.object_type} {self.object_id}".strip()

    @classmethod
    def record(cls, actor: str, action: str, obj: models.Model | None = None, **fields) -> AuditEntry:
        """Record it whatever it holds: refusals quote what strangers sent, which may be anything."""
        if obj is not None:
            fields.setdefault("object_type", obj._meta.model_name)
            fields.setdefault("object_id", str(obj.pk))
        fields = {
            name: storable(value) for name, value in {**fields, "actor": actor, "action": action}.items()
        }
        for name in ("actor", "action", "object_type", "object_id"):
            if isinstance(fields.get(name), str):
                fields[name] = fields[name][: cls._meta.get_field(name).max_length]
        return cls.objects.create(**fields)


def storable(value):
    """`value` with what a database text or JSON column refuses shown as a backslash escape instead: NUL
    (PostgreSQL refuses it in text and jsonb) and unpaired surrogates (not UTF-8)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(_escape, value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class QueueEntry(models.Model):
    """The database-backed durable queue (the embedded default; Redis Streams replaces it when configured).

    A worker claims due rows by setting a lease; a lease that runs out (the worker crashed) makes the row
    claimable again, so nothing is lost between claim and ack.
    """

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="queue_entries")
    lane = models.PositiveSmallIntegerField(
        default=Priority.NORMAL, help_text="Higher lanes are claimed first."
    )
    payload = models.BinaryField(help_text="The serialized event, zstd-compressed above the threshold.")
    compressed = models.BooleanField(default=False)
    deliveries = models.PositiveIntegerField(default=0, help_text="How many times it has been claimed.")
    available_at = models.DateTimeField(db_index=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    leased_by = models.CharField(max_length=200, blank=True)
    dead = models.BooleanField(default=False, db_index=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=("dead", "lane", "available_at"), name="queue_claim_idx")]
        verbose_name_plural = "queue entries"

    def __str__(self) -> str:
        return f"queue entry {self.pk} (lane {self.lane})"


class Worker(models.Model):
    """A running bridge process, as it last reported itself."""

    name = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)
    settings_version = models.PositiveIntegerField(default=0)
    queue_depth = models.PositiveIntegerField(default=0)
    memory_mb = models.FloatField(
        default=0, help_text="Resident memory of the process at its last heartbeat."
    )
    control_channel = models.CharField(
        max_length=200,
        blank=True,
        help_text="Its channel-layer name: where a test message for one worker goes.",
    )

    class Meta:
        ordering = ("-heartbeat_at",)

    def __str__(self) -> str:
        return self.name


def bump_settings(actor: str, *, note: str = "", **changes) -> BridgeSettings:
    """Apply changes to the settings row and audit them, as one transaction; ``note`` prefixes the audit detail.

    Raises ValidationError (nothing saved) when a value is out of range.
    """
    with transaction.atomic():
        current = BridgeSettings.load()
        before = current.as_dict()
        for name, value in changes.items():
            setattr(current, name, value)
        current.full_clean()
        current.save()
        after = current.as_dict()
        detail = "; ".join(part for part in (note, describe_changes(before, after)) if part)
        AuditEntry.record(actor, "settings.change", current, before=before, after=after, detail=detail)
    return current


def describe_changes(before: dict, after: dict) -> str:
    """``name: old -> new`` for every knob that differs (the version aside), as audit entries show it."""
    return ", ".join(
        f"{name}: {before.get(name)!r} -> {value!r}"
        for name, value in after.items()
        if name != "version" and before.get(name) != value
    )


class Approval(models.Model):
    """An approval_request waiting for, or holding, its human decision.

    The first valid answer decides; the buttons carry ``ref`` and are honoured only on the messages recorded in
    ``messages`` (Telegram sets the pressed message, so callback data copied elsewhere decides nothing).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        APPROVED = "approved", "approved"
        DENIED = "denied", "denied"
        EXPIRED = "expired", "expired"
        ANSWERED = "answered", "answered with another option"

    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="approval")
    token = models.CharField(
        max_length=32, unique=True, help_text="Unguessable ref used when the task id is not."
    )
    ref = models.CharField(max_length=64, db_index=True, help_text="What the buttons' callback data carry.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    option = models.CharField(max_length=200, blank=True, help_text="The option chosen, as its button said.")
    decided_by = models.BigIntegerField(null=True, blank=True)
    decided_by_name = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    messages = models.JSONField(
        default=list, blank=True, help_text="[chat_id, message_id] pairs it was sent as."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"approval {self.ref}: {self.status}"


class SessionGrant(models.Model):
    """ "Allow for this session": a tool approved for one Claude Code session until ``expires_at``."""

    session_id = models.CharField(max_length=200)
    tool_name = models.CharField(max_length=200)
    granted_by = models.BigIntegerField()
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("session_id", "tool_name"), name="one_grant_per_tool")]

    def __str__(self) -> str:
        return f"{self.tool_name} for session {self.session_id}"


class PollerState(models.Model):
    """The update stream of one bot: where getUpdates resumes, who polls it, and what last went wrong.

    ``next_offset`` moves only after the updates below it were handled, so a restart neither loses nor repeats
    them. The database lease (``holder``, ``leased_until``) is used when there is no Redis; with Redis the lock
    lives there and ``holder`` only reports who polls.
    """

    bot_id = models.CharField(
        max_length=32, unique=True, help_text="The numeric id at the start of the bot token."
    )
    next_offset = models.BigIntegerField(default=0, help_text="The update_id getUpdates resumes from.")
    holder = models.CharField(max_length=200, blank=True, help_text="The worker polling now.")
    leased_until = models.DateTimeField(null=True, blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "update poller"

    def __str__(self) -> str:
        return f"poller of bot {self.bot_id}: {self.holder or 'nobody'}"


class WorkerSample(models.Model):
    """A worker's figures every 10 s, for the dashboard's charts over the last hour (older samples are pruned).

    Cache counters are the look-ups made since the previous sample, so a bucket's hit rate is a plain ratio of sums.
    """

    worker = models.CharField(max_length=200)
    at = models.DateTimeField(db_index=True)
    queue_depth = models.PositiveIntegerField(default=0)
    memory_mb = models.FloatField(default=0)
    cache_hits = models.PositiveIntegerField(default=0)
    cache_lookups = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("at",)

    def __str__(self) -> str:
        return f"{self.worker} at {self.at:%H:%M:%S}"


class ChannelSession(models.Model):
    """A Claude Code session attached through `mcp_server --channel`, as it last reported itself.

    A session is live while ``closed_at`` is empty and its heartbeat is fresh (bridge.channel.inbox.STALE_AFTER).
    The most recently started live session takes messages not addressed to a live session by name.
    """

    name = models.CharField(max_length=100, db_index=True, help_text="What `/to <name>` addresses.")
    cwd = models.CharField(max_length=1000, blank=True)
    hostname = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(default=0)
    wake_port = models.PositiveIntegerField(
        null=True, blank=True, help_text="Loopback UDP port the bridge pokes when a message for it is stored."
    )
    forum_chat_id = models.BigIntegerField(null=True, blank=True, help_text="The forum its topic is in.")
    topic_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Its forum topic (message_thread_id): what is written there is for it.",
    )
    started_at = models.DateTimeField(db_index=True)
    heartbeat_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-started_at",)

    def __str__(self) -> str:
        return self.name


class ChannelMessage(models.Model):
    """An inbound Telegram message kept for the channel sessions until one has delivered it.

    Claimed (``session``, ``claimed_at``) by one conditional UPDATE, so no two sessions take the same message;
    ``delivered_at`` is set once its notification is written to the session. A claim by a session that died
    before delivering is released and the message delivered again.
    """

    chat_id = models.BigIntegerField()
    message_id = models.BigIntegerField()
    update_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField()
    username = models.CharField(max_length=200, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True)
    attachments = models.JSONField(default=list, blank=True, help_text="Paths of downloaded files.")
    target = models.CharField(max_length=100, blank=True, help_text="The session named with /to, if any.")
    thread_id = models.BigIntegerField(null=True, blank=True, help_text="The forum topic it was written in.")
    sent_at = models.DateTimeField(help_text="When Telegram says it was sent.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    session = models.ForeignKey(
        ChannelSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ("pk",)
        constraints = [
            models.UniqueConstraint(fields=("chat_id", "message_id"), name="one_channel_message_per_message")
        ]

    def __str__(self) -> str:
        return f"{self.chat_id}/{self.message_id}: {self.text[:40]}"


class PairingRequest(models.Model):
    """An unknown Telegram user asking to be heard (pairing policy): confirmed, it becomes a Recipient."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        CONFIRMED = "confirmed", "confirmed"
        REFUSED = "refused", "refused"

    code = models.CharField(max_length=6, unique=True)
    user_id = models.BigIntegerField(db_index=True)
    username = models.CharField(max_length=200, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_by = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"pairing {self.code} for {self.user_id}: {self.status}"

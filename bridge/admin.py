"""The operations UI: read-only history with filters, the singleton settings page, recipients."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from bridge.models import (
    AuditEntry,
    BridgeSettings,
    Delivery,
    Event,
    QueueEntry,
    Recipient,
    Response,
    Worker,
)

admin.site.site_header = "CCTelegram operations"
admin.site.site_title = "CCTelegram"
admin.site.index_title = "Bridge"


class HistoryAdmin(admin.ModelAdmin):
    """History is written by the bridge, never edited by hand: view only."""

    # An exact COUNT(*) on a large history table is the slowest query of a changelist; an estimate is enough.
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(BridgeSettings)
class BridgeSettingsAdmin(admin.ModelAdmin):
    readonly_fields = ("version", "updated_at")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "version",
                    "updated_at",
                    "mode",
                    "message_style",
                    "timezone",
                    "approval_timeout_seconds",
                )
            },
        ),
        ("Compression", {"fields": ("compression_level", "compression_min_bytes", "compression_timeout_ms")}),
        ("Cache", {"fields": ("cache_max_entries", "cache_ttl_seconds", "cache_validate_checksums")}),
        (
            "Rate limits",
            {
                "fields": (
                    "rate_global_per_second",
                    "rate_per_chat_per_second",
                    "rate_per_group_per_minute",
                    "rate_adaptive",
                )
            },
        ),
        ("Pipeline", {"fields": ("pipeline_capacity", "backpressure_threshold", "queue_batch_size")}),
        ("Retries", {"fields": ("retry_attempts", "retry_base_delay_ms", "retry_max_delay_ms")}),
        (
            "Circuit breaker",
            {
                "fields": (
                    "breaker_failure_threshold",
                    "breaker_window_seconds",
                    "breaker_open_seconds",
                    "breaker_half_open_successes",
                )
            },
        ),
        ("Watcher and digests", {"fields": ("watcher_debounce_ms", "watcher_step_ms", "digest_threshold")}),
        (
            "Auto-tuning",
            {"fields": ("autotune_enabled", "autotune_p99_latency_ms", "autotune_memory_budget_mb")},
        ),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None):
        # A singleton: the list would only ever hold one row, so go straight to it.
        obj = BridgeSettings.load()
        return HttpResponseRedirect(reverse("admin:bridge_bridgesettings_change", args=(obj.pk,)))

    def save_model(self, request: HttpRequest, obj: BridgeSettings, form, change: bool) -> None:
        with transaction.atomic():
            before = BridgeSettings.objects.select_for_update().get(pk=obj.pk).as_dict()
            super().save_model(request, obj, form, change)
            after = obj.as_dict()
            changed = {
                k: [before[k], after[k]] for k in after if k != "version" and before.get(k) != after[k]
            }
            AuditEntry.record(
                request.user.get_username(),
                "settings.change",
                obj,
                before=before,
                after=after,
                detail=", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()),
            )
        messages.info(
            request, f"Settings saved as version {obj.version}; running workers apply it within a second."
        )


@admin.register(Recipient)
class RecipientAdmin(admin.ModelAdmin):
    list_display = ("chat_id", "display_name", "role", "active", "sources", "min_priority", "updated_at")
    list_filter = ("active", "role", "min_priority")
    search_fields = ("display_name", "=chat_id", "sources")
    list_editable = ("active", "role")


@admin.register(Event)
class EventAdmin(HistoryAdmin):
    list_display = ("received_at", "type", "title", "source", "task_id", "priority", "status", "origin")
    list_filter = ("status", "category", "type", "priority", "origin")
    search_fields = ("=event_id", "title", "=task_id", "source")
    date_hierarchy = "received_at"


@admin.register(Delivery)
class DeliveryAdmin(HistoryAdmin):
    list_display = (
        "created_at",
        "event",
        "recipient",
        "status",
        "attempts",
        "latency_ms",
        "sent_at",
        "last_error",
    )
    list_filter = ("status", "recipient", "event__type")
    search_fields = ("=event__event_id", "event__title", "last_error")
    date_hierarchy = "created_at"
    list_select_related = ("event", "recipient")
    raw_id_fields = ("event", "recipient")


@admin.register(Response)
class ResponseAdmin(HistoryAdmin):
    list_display = ("created_at", "kind", "user_id", "username", "decision", "task_id", "event", "file_name")
    list_filter = ("kind", "decision")
    search_fields = ("=task_id", "username", "message_text", "=callback_data")
    date_hierarchy = "created_at"
    list_select_related = ("event",)
    raw_id_fields = ("event",)


@admin.register(AuditEntry)
class AuditEntryAdmin(HistoryAdmin):
    list_display = ("created_at", "actor", "action", "object_type", "object_id", "detail")
    list_filter = ("action", "object_type")
    search_fields = ("actor", "detail", "=object_id")
    date_hierarchy = "created_at"


@admin.register(QueueEntry)
class QueueEntryAdmin(HistoryAdmin):
    list_display = ("id", "event", "lane", "deliveries", "available_at", "leased_by", "leased_until", "dead")
    list_filter = ("dead", "lane")
    list_select_related = ("event",)
    raw_id_fields = ("event",)


@admin.register(Worker)
class WorkerAdmin(HistoryAdmin):
    list_display = (
        "name",
        "hostname",
        "pid",
        "started_at",
        "heartbeat_at",
        "settings_version",
        "queue_depth",
    )

"""The operations UI: read-only history with filters and actions, the singleton settings page, recipients, workers.

Every action is a POST through the admin (CSRF-checked) and leaves an AuditEntry. Actions that change what the
bridge does need the "operate" permission: the right to change the bridge settings (superusers have it).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter, SimpleListFilter
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Subquery
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from bridge import operations
from bridge.health import WORKER_STALE
from bridge.models import (
    AuditEntry,
    BridgeSettings,
    Delivery,
    Event,
    PollerState,
    QueueEntry,
    Recipient,
    Response,
    Worker,
    describe_changes,
)

admin.site.site_header = "CCTelegram operations"
admin.site.site_title = "CCTelegram"
admin.site.index_title = "Bridge"
admin.site.site_url = "/dashboard/"  # "View site" opens the live dashboard

OPERATE = ("operate",)


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


class OperationsMixin:
    """Gives actions marked ``allowed_permissions=("operate",)`` their permission check."""

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bridge.change_bridgesettings")


class HistoryAdmin(OperationsMixin, admin.ModelAdmin):
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


class RecipientFilter(SimpleListFilter):
    """Events by who they went to (one delivery per recipient and event, so no duplicate rows)."""

    title = "recipient"
    parameter_name = "recipient"

    def lookups(self, request, model_admin):
        return [(str(r.pk), str(r)) for r in Recipient.objects.only("pk", "chat_id", "display_name")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(deliveries__recipient_id=self.value())
        return queryset


# --- actions shared by events and deliveries ------------------------------------------------------------------
def _retry(modeladmin, request: HttpRequest, event_pks: list[int]) -> None:
    count = operations.on_queue(operations.requeue_events, event_pks)
    AuditEntry.record(_actor(request), "events.retry", detail=f"{count} events requeued: {event_pks[:50]}")
    if count:
        modeladmin.message_user(
            request, f"Requeued {count} events; their failed and dead deliveries go out again."
        )
    else:
        modeladmin.message_user(
            request, "None of the selected had failed or dead deliveries.", messages.WARNING
        )


def _replay(modeladmin, request: HttpRequest, event_pks: list[int]) -> None:
    replayed = operations.on_queue(operations.replay_dead_letters, event_pks)
    AuditEntry.record(
        _actor(request),
        "dead_letters.requeue",
        detail=f"{replayed.letters} queue dead letters, {replayed.events} events with dead deliveries",
    )
    if replayed.letters or replayed.events:
        modeladmin.message_user(
            request,
            f"Requeued {replayed.letters} queue dead letters and {replayed.events} events with dead deliveries.",
        )
    else:
        modeladmin.message_user(request, "No dead letters among the selected.", messages.WARNING)


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
        ("Event limits", {"fields": ("event_max_bytes", "event_max_description", "event_max_depth")}),
        (
            "Auto-tuning",
            {"fields": ("autotune_enabled", "autotune_p99_latency_ms", "autotune_memory_budget_mb")},
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj=None):
        # Knobs added by later features appear on the page without this list having to name them.
        listed = {name for _, options in self.fieldsets for name in options["fields"]}
        others = [
            f.name
            for f in BridgeSettings._meta.concrete_fields
            if f.editable and f.name not in listed and f.name != "id"
        ]
        return (*self.fieldsets, ("Other", {"fields": others})) if others else self.fieldsets

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
            AuditEntry.record(
                _actor(request),
                "settings.change",
                obj,
                before=before,
                after=after,
                detail=describe_changes(before, after),
            )
            # After the commit: a worker told earlier could read the old row.
            operations.announce_settings(obj.version)
        messages.info(
            request, f"Settings saved as version {obj.version}; running workers apply it within a second."
        )


@admin.register(Recipient)
class RecipientAdmin(OperationsMixin, admin.ModelAdmin):
    list_display = ("chat_id", "display_name", "role", "active", "sources", "min_priority", "updated_at")
    list_filter = ("active", "role", "min_priority")
    search_fields = ("display_name", "=chat_id", "sources")
    list_editable = ("active", "role")
    actions = ("send_test_message",)

    def save_model(self, request: HttpRequest, obj: Recipient, form, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            AuditEntry.record(
                _actor(request),
                "recipient.change" if change else "recipient.add",
                obj,
                detail=", ".join(f"{name}: {form.cleaned_data.get(name)!r}" for name in form.changed_data),
            )
            operations.announce_recipients()

    def delete_model(self, request: HttpRequest, obj: Recipient) -> None:
        with transaction.atomic():
            AuditEntry.record(_actor(request), "recipient.delete", obj, detail=str(obj))
            super().delete_model(request, obj)
            operations.announce_recipients()

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        with transaction.atomic():
            for obj in queryset:
                AuditEntry.record(_actor(request), "recipient.delete", obj, detail=str(obj))
            super().delete_queryset(request, queryset)
            operations.announce_recipients()

    @admin.action(description="Send a test message", permissions=OPERATE)
    def send_test_message(self, request: HttpRequest, queryset) -> None:
        for recipient in queryset:
            worker = operations.send_test_message(recipient, _actor(request))
            if worker is None:
                self.message_user(
                    request,
                    "No bridge worker is running, so nothing was sent: start one with `manage.py up` or "
                    "`manage.py run_bridge`.",
                    messages.ERROR,
                )
                return
            self.message_user(
                request,
                f"Asked worker {worker} to send a test message to {recipient}; "
                "the audit log shows whether it arrived.",
            )


@admin.register(Event)
class EventAdmin(HistoryAdmin):
    list_display = ("received_at", "type", "title", "source", "task_id", "priority", "status", "origin")
    list_filter = (
        "status",
        "category",
        "type",
        "priority",
        "origin",
        RecipientFilter,
        ("received_at", DateFieldListFilter),
    )
    search_fields = ("=event_id", "title", "=task_id", "source")
    date_hierarchy = "received_at"
    actions = ("retry_failed", "requeue_dead_letters")

    @admin.action(description="Retry failed deliveries of the selected events", permissions=OPERATE)
    def retry_failed(self, request: HttpRequest, queryset) -> None:
        _retry(self, request, list(queryset.values_list("pk", flat=True)))

    @admin.action(description="Requeue dead letters of the selected events", permissions=OPERATE)
    def requeue_dead_letters(self, request: HttpRequest, queryset) -> None:
        _replay(self, request, list(queryset.values_list("pk", flat=True)))

    def get_urls(self):
        purge = path("purge/", self.admin_site.admin_view(self.purge_view), name="bridge_event_purge")
        return [purge, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {**(extra_context or {}), "can_operate": self.has_operate_permission(request)}
        return super().changelist_view(request, extra_context)

    def purge_view(self, request: HttpRequest):
        """Step 1 (GET): choose N and see what would go. Step 2 (POST): purge, audit, back to the list."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        form = PurgeForm(request.POST if request.method == "POST" else (request.GET or {"days": 30}))
        if request.method == "POST" and form.is_valid():
            purged = operations.purge_history(form.cleaned_data["days"], _actor(request))
            self.message_user(
                request,
                f"Purged {purged.events} events, {purged.deliveries} deliveries and {purged.responses} "
                f"responses older than {form.cleaned_data['days']} days.",
            )
            return HttpResponseRedirect(reverse("admin:bridge_event_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Purge old history",
            "form": form,
            "preview": operations.purge_preview(form.cleaned_data["days"]) if form.is_valid() else None,
            "days": form.cleaned_data.get("days") if form.is_valid() else None,
        }
        return TemplateResponse(request, "admin/bridge/event/purge.html", context)


class PurgeForm(forms.Form):
    days = forms.IntegerField(
        min_value=1,
        max_value=36_500,
        help_text="Finished events received more than this many days ago go, with their deliveries; responses "
        "as old too. Audit entries stay.",
    )


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
    list_filter = ("status", "recipient", "event__type", ("created_at", DateFieldListFilter))
    search_fields = ("=event__event_id", "event__title", "last_error")
    date_hierarchy = "created_at"
    list_select_related = ("event", "recipient")
    raw_id_fields = ("event", "recipient")
    actions = ("retry_failed", "requeue_dead_letters")

    @admin.action(description="Retry the selected failed deliveries", permissions=OPERATE)
    def retry_failed(self, request: HttpRequest, queryset) -> None:
        failed = queryset.filter(status__in=operations.RETRYABLE)
        _retry(self, request, sorted(set(failed.values_list("event_id", flat=True))))

    @admin.action(description="Requeue the selected dead letters", permissions=OPERATE)
    def requeue_dead_letters(self, request: HttpRequest, queryset) -> None:
        _replay(self, request, sorted(set(queryset.values_list("event_id", flat=True))))


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
    actions = ("restore_before", "restore_after")

    @admin.action(
        description="Restore the settings as they were before the selected change", permissions=OPERATE
    )
    def restore_before(self, request: HttpRequest, queryset) -> None:
        self._restore_one(request, queryset, "before")

    @admin.action(
        description="Restore the settings as they were after the selected change", permissions=OPERATE
    )
    def restore_after(self, request: HttpRequest, queryset) -> None:
        self._restore_one(request, queryset, "after")

    def _restore_one(self, request: HttpRequest, queryset, which: str) -> None:
        entries = list(queryset[:2])
        if len(entries) != 1 or entries[0].action != "settings.change":
            self.message_user(request, "Select exactly one settings change to restore.", messages.WARNING)
            return
        self._restore(request, entries[0], which)

    def _restore(self, request: HttpRequest, entry: AuditEntry, which: str) -> None:
        try:
            restored = operations.restore_settings(entry, which, _actor(request))
        except (ValueError, ValidationError) as error:
            self.message_user(request, f"Not restored: {error}", messages.ERROR)
            return
        self.message_user(
            request,
            f"Settings restored as version {restored.version}; running workers apply it within a second.",
        )

    def get_urls(self):
        restore = path(
            "<path:object_id>/restore/",
            self.admin_site.admin_view(require_POST(self.restore_view)),
            name="bridge_auditentry_restore",
        )
        return [restore, *super().get_urls()]

    def restore_view(self, request: HttpRequest, object_id: str):
        if not self.has_operate_permission(request):
            raise PermissionDenied
        entry = get_object_or_404(AuditEntry, pk=object_id)
        self._restore(request, entry, request.POST.get("which", ""))
        return HttpResponseRedirect(reverse("admin:bridge_auditentry_change", args=(entry.pk,)))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        entry = self.get_object(request, object_id)
        can_restore = (
            entry is not None and entry.action == "settings.change" and self.has_operate_permission(request)
        )
        extra_context = {**(extra_context or {}), "can_restore": can_restore}
        return super().change_view(request, object_id, form_url, extra_context)


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
        "alive",
        "heartbeat_at",
        "settings_version",
        "settings_current",
        "queue_depth",
        "memory_mb",
        "hostname",
        "pid",
        "started_at",
    )

    def get_queryset(self, request: HttpRequest):
        current = BridgeSettings.objects.filter(pk=BridgeSettings.SINGLETON_PK).values("version")
        return super().get_queryset(request).annotate(current_version=Subquery(current[:1]))

    @admin.display(boolean=True, description="alive", ordering="heartbeat_at")
    def alive(self, obj: Worker) -> bool:
        """False: stale, no heartbeat for 30 s (it beats every 2 s): the process is gone or stuck."""
        return obj.heartbeat_at >= timezone.now() - WORKER_STALE

    @admin.display(description="current settings")
    def settings_current(self, obj: Worker) -> str:
        current = getattr(obj, "current_version", None) or 0
        return f"{current} (behind)" if obj.settings_version < current else str(current)


@admin.register(PollerState)
class PollerStateAdmin(HistoryAdmin):
    """Who polls Telegram for updates, where it resumes, and the last error (a 409 Conflict shows here)."""

    list_display = ("bot_id", "holder", "next_offset", "last_poll_at", "last_error_at", "last_error")


from bridge.channel import admin as _channel_admin  # noqa: E402, F401  (registers the channel models)

"""The channel in the operations UI: sessions, their inbox, and pairing requests to confirm or refuse.

Registered from bridge.admin (Django discovers only that module), with the same read-only history base.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from bridge.admin import OPERATE, HistoryAdmin, _actor
from bridge.channel import pairing
from bridge.models import ChannelMessage, ChannelSession, PairingRequest


@admin.register(ChannelSession)
class ChannelSessionAdmin(HistoryAdmin):
    list_display = ("name", "hostname", "pid", "cwd", "started_at", "heartbeat_at", "closed_at")
    search_fields = ("name", "cwd", "hostname")
    date_hierarchy = "started_at"


@admin.register(ChannelMessage)
class ChannelMessageAdmin(HistoryAdmin):
    list_display = ("received_at", "chat_id", "username", "target", "session", "delivered_at", "short_text")
    list_filter = (("delivered_at", admin.EmptyFieldListFilter), "target")
    list_select_related = ("session",)
    search_fields = ("text", "username", "chat_id")
    date_hierarchy = "received_at"

    @admin.display(description="text")
    def short_text(self, obj: ChannelMessage) -> str:
        return obj.text[:80]


@admin.register(PairingRequest)
class PairingRequestAdmin(HistoryAdmin):
    list_display = (
        "code",
        "user_id",
        "username",
        "first_name",
        "status",
        "created_at",
        "expires_at",
        "decided_by",
    )
    list_filter = ("status",)
    search_fields = ("code", "username", "user_id")
    actions = ("confirm", "refuse")

    @admin.action(description="Confirm: make them a Recipient (viewer)", permissions=OPERATE)
    def confirm(self, request: HttpRequest, queryset) -> None:
        self._decide(request, queryset, confirm=True)

    @admin.action(description="Refuse", permissions=OPERATE)
    def refuse(self, request: HttpRequest, queryset) -> None:
        self._decide(request, queryset, confirm=False)

    def _decide(self, request: HttpRequest, queryset, *, confirm: bool) -> None:
        done = 0
        for code in queryset.values_list("code", flat=True):
            try:
                pairing.decide(code, _actor(request), confirm=confirm)
                done += 1
            except pairing.PairingError as error:
                self.message_user(request, str(error), messages.WARNING)
        if done:
            self.message_user(request, f"{done} pairing request(s) {'confirmed' if confirm else 'refused'}.")

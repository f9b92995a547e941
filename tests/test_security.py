"""Security, tested as attacks: strangers on Telegram, forged button presses, anonymous web visitors, forged admin
posts, guessed tokens, a bot token hunted for in logs, markup smuggled into messages.

The web checks walk every URL and websocket route the project has, so a page added later is covered without
touching this file. (Script injection into the dashboard and sandbox is the browser suite's, tests/test_browser.py.)
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver

from bridge.mcp.http import BearerAuth
from bridge.models import Approval, AuditEntry, BridgeSettings, Recipient, Response
from bridge.pipeline import Pipeline
from bridge.replies.service import Replies, bot_id_of
from bridge.telegram.send import build_sender
from bridge.telegram.transport import TelegramTransport
from tests.emulator_fixtures import TEST_TOKEN
from tests.processes import BridgeProcesses, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ALICE, BOB, VIEWER, FORMER, MALLORY = 111111, 222222, 333333, 444444, 666666
GROUP = -1001234567
SECRET_TOKEN = "918273645:CCT-secret-DO-NOT-LOG_a1b2c3d4e5f6"


def person(user_id: int, name: str) -> dict:
    return {"id": user_id, "username": name, "first_name": name.title()}


def tune(**changes) -> None:
    current = BridgeSettings.load()
    for name, value in changes.items():
        setattr(current, name, value)
    current.full_clean()
    current.save()


async def deliver(events_dir: Path, *bodies: dict) -> None:
    """Drop the events and run the real pipeline until they are sent."""
    for i, body in enumerate(bodies):
        (events_dir / f"{time.monotonic_ns()}-{i}.json").write_text(json.dumps(body))
    pipeline = Pipeline(sender_factory=build_sender)
    try:
        await pipeline.run_once()
    finally:
        await pipeline.queue.close()


def approval(task_id: str, title: str = "Deploy to production?") -> dict:
    return {
        "type": "approval_request",
        "title": title,
        "task_id": task_id,
        "data": {"approval_prompt": "Deploy v2?"},
    }


# --- Telegram: who is heard -----------------------------------------------------------------------------------------


def test_strangers_former_recipients_and_viewers_decide_nothing_in_a_running_worker(
    tmp_path, emulator, redis_url, key_prefix, transactional_db
):
    Recipient.objects.create(chat_id=ALICE, display_name="alice")
    Recipient.objects.create(chat_id=GROUP, display_name="the team group")
    Recipient.objects.create(chat_id=VIEWER, display_name="viewer", role=Recipient.Role.VIEWER)
    Recipient.objects.create(chat_id=FORMER, display_name="former", active=False)
    bridge = BridgeProcesses(tmp_path, emulator=emulator, redis_url=redis_url, key_prefix=key_prefix)
    try:
        [worker] = bridge.spawn(1)
        bridge.drop("approval.json", approval("deploy-1"))
        wait_for(
            lambda: all(emulator.state.last_message(c) for c in (ALICE, GROUP, VIEWER)),
            timeout=30,
            what="the approval in every active chat",
        )
        in_group = emulator.state.last_message(GROUP)["message_id"]
        in_viewer_chat = emulator.state.last_message(VIEWER)["message_id"]
        # A member of the team group who is nobody's recipient presses Approve; strangers and a recipient the
        # operator deactivated write to the bot and press what they can; a viewer presses Approve.
        emulator.press(GROUP, in_group, "approve_deploy-1", user=person(MALLORY, "mallory"))
        emulator.say(MALLORY, "approve deploy-1", user=person(MALLORY, "mallory"))
        emulator.say(FORMER, "/cct:mute", user=person(FORMER, "former"))
        emulator.press(GROUP, in_group, "deny_deploy-1", user=person(FORMER, "former"))
        emulator.press(VIEWER, in_viewer_chat, "approve_deploy-1", user=person(VIEWER, "viewer"))
        refused = AuditEntry.objects.filter(action="access.refused")
        wait_for(lambda: refused.count() >= 5, timeout=30, what="five refusals audited")
        wait_for(lambda: len(emulator.state.answered_callbacks()) == 3, timeout=10, what="presses answered")

        assert Approval.objects.get().status == Approval.Status.PENDING
        assert not Response.objects.exists()
        assert list(bridge.responses_dir.iterdir()) == []
        assert BridgeSettings.load().mode == "local"  # the former recipient's /cct:mute was not obeyed
        assert sorted(set(refused.values_list("actor", flat=True))) == [
            f"telegram:{user}" for user in sorted((MALLORY, FORMER, VIEWER), key=str)
        ]
        # A stranger learns nothing, not even that the bot is alive; presses get a refusal alert.
        assert emulator.state.last_message(MALLORY) is None
        assert emulator.state.last_message(FORMER) is None
        assert all(a["show_alert"] for a in emulator.state.answered_callbacks())

        emulator.press(GROUP, in_group, "approve_deploy-1", user=person(ALICE, "alice"))
        wait_for(
            lambda: Approval.objects.get().status == Approval.Status.APPROVED,
            timeout=30,
            what="the approver's press to decide",
        )
        assert worker.alive()
    finally:
        bridge.kill_all()


# --- Telegram: forged button presses ------------------------------------------------------------------------------


@pytest.fixture
async def replies(folders, emulator):
    """Two pending approvals for ALICE (and BOB), and a step-by-step poller to hear presses."""
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")
    await Recipient.objects.acreate(chat_id=BOB, display_name="bob")
    transport = TelegramTransport(TEST_TOKEN, base_url=emulator.base_url)
    await transport.start()
    worker = Replies(transport, name="security", bot_id=bot_id_of(TEST_TOKEN))
    worker.apply(await sync_to_async(BridgeSettings.load)())
    worker.writer.start()
    yield worker
    await worker.stop()
    await transport.close()


FORGERIES = [
    "approve_deploy-b",  # the other approval's ref, on this approval's message
    "approve_guessed-token-0123",  # a guessed token
    "approve_",
    "approve",
    "_deploy-a",
    "APPROVE_deploy-a",
    "approve_deploy-a\x00",
    "approve_deploy-a" + "x" * 200,  # beyond Telegram's 64 bytes: only a forged update carries it
    "approve_dép loy-a ✅",
    "opt99_deploy-a",  # an option the approval does not offer
]


async def test_forged_callback_data_cannot_decide_another_or_any_approval(replies, folders, emulator):
    events_dir = Path(folders.CC_TELEGRAM_EVENTS_DIR)
    await deliver(events_dir, approval("deploy-a", "First?"))
    message_a = emulator.state.last_message(ALICE)["message_id"]
    await deliver(
        events_dir, approval("deploy b needs a token!", "Second?")
    )  # no safe task id: a random token
    message_b = emulator.state.last_message(ALICE)["message_id"]
    await deliver(events_dir, {"type": "info_notification", "title": "Just news"})
    message_news = emulator.state.last_message(ALICE)["message_id"]
    token_b = (await Approval.objects.aget(event__title="Second?")).token
    assert len(token_b) >= 12  # 72 random bits or more

    alice = person(ALICE, "alice")
    for data in FORGERIES:
        emulator.press(ALICE, message_a, data, user=alice)
    emulator.press(ALICE, message_news, "approve_deploy-a", user=alice)  # onto a message of no approval
    emulator.press(ALICE, message_a, f"approve_{token_b}", user=alice)  # B's real token on A's message
    bobs_a = next(
        m["message"]["message_id"]
        for m in emulator.state.sent_messages(BOB)
        if "First?" in m["message"]["text"]
    )
    emulator.press(BOB, bobs_a, f"approve_{token_b}", user=person(BOB, "bob"))  # in another chat, too
    presses = len(FORGERIES) + 3
    for _ in range(5):
        await replies.poll_once(timeout=0)
        if len(emulator.state.answered_callbacks()) >= presses:
            break

    assert len(emulator.state.answered_callbacks()) == presses  # every press answered, none crashed
    statuses = [a.status async for a in Approval.objects.order_by("pk")]
    assert statuses == [Approval.Status.PENDING, Approval.Status.PENDING]
    assert not await Response.objects.filter(kind=Response.Kind.CALLBACK).exclude(decision="").aexists()

    # The genuine press decides its own approval, and only that one.
    emulator.press(ALICE, message_b, f"approve_{token_b}", user=alice)
    await replies.poll_once(timeout=0)
    statuses = [a.status async for a in Approval.objects.order_by("pk")]
    assert statuses == [Approval.Status.PENDING, Approval.Status.APPROVED]


# --- Telegram: webhook --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "path_secret", "header"),
    [
        ("", "", ""),  # no secret configured: nothing is accepted, not even an empty one
        ("", "anything", "anything"),
        ("s3cret-hook_value", "s3cret-hook_value", ""),
        ("s3cret-hook_value", "s3cret-hook_value", "s3cret-hook_valuE"),
        ("s3cret-hook_value", "s3cret-hook_valu", "s3cret-hook_value"),
        ("s3cret-hook_value", "S3CRET-HOOK_VALUE", "s3cret-hook_value"),
    ],
)
def test_webhook_refuses_every_request_without_both_secrets(
    client, settings, configured, path_secret, header
):
    settings.TELEGRAM_WEBHOOK_SECRET = configured
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": ALICE, "type": "private"},
              "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "text": "/cct:mute"}}  # fmt: skip
    headers = {"X-Telegram-Bot-Api-Secret-Token": header} if header else {}
    answer = client.post(
        f"/telegram/webhook/{path_secret or 'x'}", update, content_type="application/json", headers=headers
    )
    assert answer.status_code == 403
    assert client.get(f"/telegram/webhook/{configured or 'x'}").status_code == 405
    assert BridgeSettings.load().mode == "local"


# --- the web: login everywhere ------------------------------------------------------------------------------------

PUBLIC = {
    "health": "load balancers and monitors",
    "health/live": "load balancers and monitors",
    "health/ready": "load balancers and monitors",
    "admin/login/": "the way in",
    "admin/logout/": "the way out",
    "metrics": "public only while CC_TELEGRAM_METRICS_TOKEN is unset (tested with a token below)",
}
_CONVERTERS = re.compile(r"<(?:\w+:)?(\w+)>")


def concrete_paths() -> list[str]:
    """Every URL pattern of the project as a path to request (parameters filled with plausible values)."""
    paths = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + route)
                continue
            assert isinstance(pattern, URLPattern)
            if route.startswith("^"):  # the admin's regex routes: app index and catch-all
                route = "bridge/" if "app_label" in route else "no-such-page/"
            paths.append(prefix + _CONVERTERS.sub("1", route))

    walk(get_resolver().url_patterns, "")
    return paths


def test_anonymous_visitors_get_no_page_and_no_action_anywhere(client, settings, transactional_db):
    settings.CC_TELEGRAM_SANDBOX = True
    settings.CC_TELEGRAM_METRICS_TOKEN = "metrics-token-for-the-test"
    settings.TELEGRAM_WEBHOOK_SECRET = "hook-secret-for-the-test"
    paths = concrete_paths()
    assert {"admin/", "dashboard/", "sandbox/", "sandbox/press", "admin/bridge/event/purge/"} <= set(paths)
    served = []
    for path in paths:
        for method in ("get", "post"):
            response = getattr(client, method)(
                "/" + path, {"action": "delete_selected", "_selected_action": "1"}
            )
            status = response.status_code
            if path in PUBLIC and path != "metrics":
                continue
            if path == "":  # the home page is only a redirect to the admin
                assert (status, response.url) == (302, "/admin/"), method
                continue
            if status in (301, 302):
                assert response.url.startswith(django_settings.LOGIN_URL), (method, path, response.url)
            elif status not in (401, 403, 405):
                served.append((method.upper(), "/" + path, status))
    assert served == []


async def test_anonymous_websockets_are_refused_at_the_handshake():
    from cctelegram.asgi import application
    from cctelegram.routing import websocket_routes

    for route in websocket_routes:
        path = "/" + _CONVERTERS.sub("1", str(route.pattern))
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost")])
        connected, _ = await communicator.connect()
        assert not connected, path
        await communicator.disconnect()


def admin_posts() -> list[tuple[str, dict]]:
    """Every state-changing admin request: each action of each changelist, and the add/change/delete forms."""
    request = RequestFactory().get("/admin/")
    request.user = type("Superuser", (), {"is_active": True, "is_staff": True, "is_superuser": True,
                                          "has_perm": lambda *a: True, "has_perms": lambda *a: True})()  # fmt: skip
    posts = []
    for model, model_admin in admin.site._registry.items():
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for action in model_admin.get_actions(request):
            posts.append((base, {"action": action, "_selected_action": ["1"], "index": "0"}))
        posts += [(f"{base}add/", {}), (f"{base}1/change/", {}), (f"{base}1/delete/", {"post": "yes"})]
    posts += [("/admin/bridge/event/purge/", {"days": "1"}), ("/admin/bridge/auditentry/1/restore/", {})]
    posts += [("/sandbox/press", {"message_id": "1", "data": "approve_x"}), ("/sandbox/say", {"text": "hi"})]
    return posts


def test_every_admin_action_and_form_needs_the_csrf_token(admin_user, settings):
    settings.CC_TELEGRAM_SANDBOX = True
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    posts = admin_posts()
    assert len(posts) > 40
    accepted = [(url, form.get("action")) for url, form in posts if client.post(url, form).status_code != 403]
    assert accepted == []
    # The same request with the token is let through (so the 403s above were the CSRF check's).
    BridgeSettings.load()
    client.get("/admin/bridge/bridgesettings/1/change/")  # a form page sets the CSRF cookie, as for a browser
    token = client.cookies["csrftoken"].value
    with_token = client.post("/admin/bridge/bridgesettings/1/change/", {"csrfmiddlewaretoken": token})
    assert with_token.status_code != 403
    said = client.post(
        "/sandbox/say", {"text": "hi"}, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert said.status_code != 403


# --- tokens -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("", 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        ("Bearer wrong-token", 401),
        ("Bearer metrics-token-for-the-tes", 401),  # a prefix of the token
        ("Bearer metrics-token-for-the-testX", 401),
        ("Basic metrics-token-for-the-test", 401),
        ("metrics-token-for-the-test", 401),
        ("Bearer metrics-token-for-the-test", 200),
    ],
)
def test_metrics_need_the_exact_bearer_token(client, settings, authorization, status):
    settings.CC_TELEGRAM_METRICS_TOKEN = "metrics-token-for-the-test"
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = client.get("/metrics?token=metrics-token-for-the-test", headers=headers)
    assert answer.status_code == status
    if status == 401:
        assert "cc_telegram" not in answer.content.decode()


MCP_KEY = "mcp-key-0123456789abcdefXYZ"


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [
        (None, False),
        (b"", False),
        (b"Bearer", False),
        (b"Bearer ", False),
        (b"Bearer " + MCP_KEY[:-1].encode(), False),
        (b"Bearer " + MCP_KEY.encode() + b"0", False),
        (b"Basic " + MCP_KEY.encode(), False),
        (MCP_KEY.encode(), False),
        (b"Bearer other-key-that-is-long-enough", True),
        (b"Bearer " + MCP_KEY.encode(), True),
    ],
)
async def test_mcp_http_transport_needs_one_of_its_keys(authorization, allowed):
    """The guard in front of `manage.py mcp_server --transport http` (the served process: tests/test_mcp.py)."""
    reached = []

    async def sdk_app(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = BearerAuth(sdk_app, [MCP_KEY, "other-key-that-is-long-enough"])
    sent = []
    headers = [] if authorization is None else [(b"authorization", authorization)]
    scope = {"type": "http", "path": "/mcp", "method": "POST", "headers": headers}

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    await guarded(scope, receive, send)
    assert sent[0]["status"] == (200 if allowed else 401)
    assert reached == (["/mcp"] if allowed else [])


# --- no secret in logs --------------------------------------------------------------------------------------------

LOUD_LOGGERS = ("", "httpx", "httpcore", "telegram", "bridge", "django", "asyncio", "watchfiles", "uvicorn")


async def test_the_bot_token_never_reaches_the_logs_of_a_pipeline_at_debug(folders, emulator, caplog, capfd):
    for name in LOUD_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    folders.TELEGRAM_BOT_TOKEN = SECRET_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")
    await sync_to_async(tune)(
        retry_base_delay_ms=10,
        retry_max_delay_ms=100,
        breaker_failure_threshold=100,
        rate_per_chat_per_second=100,
        rate_adaptive=False,
    )
    faults = [
        {"method": "sendMessage", "status": 500, "fail_next": 1},
        {"method": "sendMessage", "status": 429, "retry_after": 1, "fail_next": 1},
        {
            "method": "sendMessage",
            "status": 400,
            "description": "Bad Request: chat not found",
            "fail_next": 1,
        },
    ]
    with emulator.state.lock:
        from bridge.telegram.emulator.faults import FaultRule

        for rule in faults:
            emulator.state.faults.add(FaultRule.from_json(rule))
    events_dir = Path(folders.CC_TELEGRAM_EVENTS_DIR)
    await deliver(events_dir, *({"type": "task_completion", "title": f"done {i}"} for i in range(4)))
    # Answers heard through the poller, and a Bot API that is down: errors naming the request.
    transport = TelegramTransport(SECRET_TOKEN, base_url=emulator.base_url)
    await transport.start()
    worker = Replies(transport, name="logs", bot_id=bot_id_of(SECRET_TOKEN))
    worker.apply(await sync_to_async(BridgeSettings.load)())
    worker.writer.start()
    emulator.say(ALICE, "hello", user=person(ALICE, "alice"))
    await worker.poll_once(timeout=0)
    await worker.stop()
    await transport.close()
    dead = TelegramTransport(SECRET_TOKEN, base_url="http://127.0.0.1:9/bot", connect_timeout=0.5)
    with pytest.raises(Exception) as refused:
        await dead.start()
    logging.getLogger("security-test").exception("the Bot API is down", exc_info=refused.value)
    await dead.close()

    assert emulator.state.calls.total > 8  # the token was used, a lot
    assert caplog.records, "nothing was logged: the check would prove nothing"
    out, err = capfd.readouterr()
    for where, text in (("log records", caplog.text), ("stdout", out), ("stderr", err)):
        assert SECRET_TOKEN not in text, where
        assert SECRET_TOKEN.split(":")[1] not in text, where  # the secret half alone, too
    assert SECRET_TOKEN not in str(refused.value)


def test_the_bot_token_never_reaches_a_worker_process_log(
    tmp_path, emulator, redis_url, key_prefix, transactional_db
):
    Recipient.objects.create(chat_id=ALICE, display_name="alice")
    tune(retry_base_delay_ms=10, retry_max_delay_ms=100)
    bridge = BridgeProcesses(
        tmp_path,
        emulator=emulator,
        redis_url=redis_url,
        key_prefix=key_prefix,
        token=SECRET_TOKEN,
        extra_env={"CC_TELEGRAM_LOG_LEVEL": "DEBUG", "CC_TELEGRAM_API_TIMEOUT": "1"},
    )
    try:
        [worker] = bridge.spawn(1)
        from bridge.telegram.emulator.faults import FaultRule

        with emulator.state.lock:
            emulator.state.faults.add(
                FaultRule.from_json({"method": "sendMessage", "status": 502, "fail_next": 2})
            )
            emulator.state.faults.add(
                FaultRule.from_json(
                    {"method": "sendMessage", "timeout": True, "hold_ms": 2000, "fail_next": 1}
                )
            )
        for i in range(3):
            bridge.drop(f"e{i}.json", {"type": "build_failed", "title": f"broken {i}"})
        emulator.say(ALICE, "still there?", user=person(ALICE, "alice"))
        wait_for(lambda: Response.objects.exists(), timeout=30, what="the reply to be heard")
        wait_for(
            lambda: len(emulator.state.sent_messages(ALICE)) >= 3, timeout=30, what="the events to be sent"
        )
        assert bridge.stop_all() == []
        log = worker.log()
    finally:
        bridge.kill_all()
    assert " DEBUG " in log, "the worker did not log at DEBUG: the check would prove little"
    assert SECRET_TOKEN not in log
    assert SECRET_TOKEN.split(":")[1] not in log


# --- no markup from event text ------------------------------------------------------------------------------------

INJECTED = "<b>bold</b> *x* [a](http://e) <a href='http://evil.example'>click</a> _i_ `c` ||s|| <tg-spoiler>x"
# Entities only event text could bring (the bridge's own layout uses bold, italic, code and blockquote).
FORBIDDEN_ENTITIES = {"text_link", "text_mention", "url", "mention", "spoiler", "underline", "strikethrough",
                      "custom_emoji", "email", "phone_number", "hashtag", "cashtag"}  # fmt: skip


def utf16_span(text: str, needle: str) -> tuple[int, int]:
    start = text.index(needle)
    offset = len(text[:start].encode("utf-16-le")) // 2
    return offset, offset + len(needle.encode("utf-16-le")) // 2


async def test_event_text_cannot_inject_markup_into_telegram_messages(folders, emulator):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")
    events_dir = Path(folders.CC_TELEGRAM_EVENTS_DIR)
    hostile = {
        "title": INJECTED,
        "description": INJECTED,
        "source": "src " + INJECTED[:60],
        "data": {"approval_prompt": INJECTED, "error_message": INJECTED, "file_path": INJECTED,
                 "options": [INJECTED[:40], "Deny"], "tags": [INJECTED]},
    }  # fmt: skip
    for style in ("concise", "detailed"):
        await sync_to_async(tune)(message_style=style, digest_threshold=1000)
        await deliver(
            events_dir,
            # Distinct ids per style: the same bytes twice are one event (its id is their digest), sent once.
            {"type": "build_failed", "task_id": f"build-{style}", **hostile},
            {"type": "approval_request", "task_id": f"markup-{style}", **hostile},
        )
    await sync_to_async(tune)(digest_threshold=2, rate_per_chat_per_second=0.5)
    await deliver(
        events_dir, *({"type": "file_modified", **hostile, "title": f"{i} {INJECTED}"} for i in range(4))
    )

    messages = [m["message"] for m in emulator.state.sent_messages(ALICE)]
    assert len(messages) >= 5
    for message in messages:
        text, entities = message["text"], message.get("entities", [])
        assert INJECTED[:40] in text, text  # shown literally...
        assert "evil.example" not in json.dumps(entities)
        assert not [e for e in entities if e["type"] in FORBIDDEN_ENTITIES], entities
        start, end = utf16_span(text, INJECTED[:40])
        for entity in entities:  # ...and no entity of the bridge's own begins or ends inside it
            assert not start < entity["offset"] < end, (entity, text)
            assert not start < entity["offset"] + entity["length"] < end, (entity, text)
        for row in message.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                assert "url" not in button or "evil.example" not in button["url"]

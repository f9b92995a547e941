"""The operator's loop in a real browser: Chromium (Playwright) against a real `manage.py up` on a free port.

Log in; tune a setting and see the running worker apply it; watch a delivery appear live on the dashboard; press
Approve in the sandbox and find the response file; agent text never runs as markup. Screenshots of the dashboard
and the sandbox are saved to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERNAME, PASSWORD = "operator", "browser-test-password"
XSS = "<img src=x onerror=alert(1)>"


@dataclass
class Server:
    base: str
    home: Path
    process: subprocess.Popen

    @property
    def events(self) -> Path:
        return self.home / "events"

    @property
    def responses(self) -> Path:
        return self.home / "responses"

    def drop(self, **event) -> None:
        """Write an event file as agents should: a temporary name, then a rename."""
        name = uuid.uuid4().hex
        temporary = self.events / f".{name}.tmp"
        temporary.write_text(json.dumps(event))
        temporary.rename(self.events / f"{name}.json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """`manage.py up` with a fresh home (SQLite) and no Telegram configuration: the sandbox. With REDIS_URL set
    (CI), the channel layer, queue and cache are Redis under a prefix of this run's own."""
    home = tmp_path_factory.mktemp("cct-home")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_ALLOWED_USERS", "TELEGRAM_API_BASE_URL")
    }
    env.update(
        CC_TELEGRAM_HOME=str(home),
        CC_TELEGRAM_REDIS_PREFIX=f"cct-browser:{uuid.uuid4().hex[:8]}",
        PYTHONUNBUFFERED="1",
        DJANGO_SUPERUSER_USERNAME=USERNAME,
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    log = (home / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        for line in process.stdout:
            if "Ctrl-C stops" in line:
                break
        else:
            pytest.fail(f"manage.py up did not start:\n{(home / 'up.log').read_text()}")
        yield Server(f"http://localhost:{port}", home, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
    assert process.returncode == 0, (home / "up.log").read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """A fresh browser session, logged in through the admin's login form."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{server.base}/admin/login/?next=/admin/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text("CCTelegram operations")
    yield page
    context.close()
    assert dialogs == [], f"a script ran: {dialogs}"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def wait_for_file(folder: Path, predicate, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("telegram_*.json")):
            content = json.loads(path.read_text())
            if predicate(content):
                return content
        time.sleep(0.1)
    raise AssertionError(f"no matching response file in {folder}: {[p.name for p in folder.iterdir()]}")


def test_a_settings_change_in_the_admin_reaches_the_running_worker(page: Page, server: Server):
    page.goto(f"{server.base}/admin/bridge/bridgesettings/")
    page.fill("#id_compression_level", "9")
    page.click("input[name=_save]")
    saved = page.locator("ul.messagelist li", has_text="Settings saved as version")
    expect(saved).to_be_visible()
    version = re.search(r"version (\d+)", saved.inner_text()).group(1)

    # The worker list shows the version each worker applied, from its heartbeat.
    page.goto(f"{server.base}/admin/bridge/worker/")
    deadline = time.monotonic() + 5
    while page.locator("td.field-settings_version").first.inner_text() != version:
        assert time.monotonic() < deadline, "the worker did not apply the new settings within 5 s"
        time.sleep(0.25)
        page.reload()
    expect(page.locator("td.field-settings_current").first).to_have_text(version)
    expect(page.locator("td.field-alive img").first).to_have_attribute("alt", "True")


def test_the_dashboard_shows_deliveries_live_and_agent_text_literally(page: Page, server: Server):
    page.goto(f"{server.base}/dashboard/")
    expect(page.locator("#connection")).to_have_text("live")

    server.drop(type="build_completed", title="Browser build 42 passed", source="browser-test")
    row = page.locator("#feed tr", has_text="Browser build 42 passed")
    expect(row).to_be_visible()
    expect(row.locator("td.status")).to_have_text("sent")

    server.drop(type="build_failed", title=XSS, description=f"<script>alert(2)</script> {XSS}")
    title = page.locator("#feed td.title", has_text=XSS)
    expect(title).to_have_text(XSS)
    assert page.locator("#feed img").count() == 0
    # The figures follow: the hour's tile counts both deliveries within a stats refresh or two.
    expect(page.locator("#tile-sent")).to_have_text(re.compile(r"^[2-9]|\d\d"), timeout=15_000)
    screenshot(page, "dashboard.png")

    # The sandbox shows the same text as Telegram would: literally.
    page.goto(f"{server.base}/sandbox/")
    bubble = page.locator(".msg", has_text=XSS)
    expect(bubble).to_be_visible()
    assert bubble.locator("img, script").count() == 0


def test_approve_in_the_sandbox_writes_the_response_file(page: Page, server: Server):
    task = f"browser-{uuid.uuid4().hex[:8]}"
    server.drop(
        type="approval_request",
        title="Deploy from the browser test?",
        task_id=task,
        data={"approval_prompt": "Deploy **now**?", "options": ["Approve", "Deny"]},
    )
    page.goto(f"{server.base}/sandbox/")
    expect(page.locator("#connection")).to_have_text("live")
    bubble = page.locator(".msg", has_text="Deploy from the browser test?")
    expect(bubble.locator("strong").first).to_be_visible()  # rendered from the message's bold entity
    bubble.get_by_role("button", name=re.compile("Approve")).click()

    content = wait_for_file(server.responses, lambda c: c.get("task_id") == task)
    assert (content["decision"], content["callback_data"]) == ("approved", f"approve_{task}")
    assert content["response_type"] == "callback_query"
    # Telegram's side of it: the message is edited to show the decision and loses its buttons.
    expect(bubble.get_by_role("button", name=re.compile("Approve"))).to_have_count(0)
    expect(bubble).to_contain_text("Approved")
    screenshot(page, "sandbox.png")


def test_a_test_message_sent_from_the_admin_arrives_in_the_sandbox(page: Page, server: Server):
    page.goto(f"{server.base}/admin/bridge/recipient/")
    page.locator("input.action-select").first.check()
    page.select_option("select[name=action]", "send_test_message")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist li", has_text="to send a test message")).to_be_visible()
    page.goto(f"{server.base}/sandbox/")
    expect(
        page.locator(".msg", has_text=f"Test message from CCTelegram, sent from the admin by {USERNAME}")
    ).to_be_visible()

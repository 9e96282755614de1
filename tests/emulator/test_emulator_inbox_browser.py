"""The web inbox in a real browser (headless Chromium): a push shows up without a reload, and a user's text
goes as a signed webhook to a bot on loopback whose reply appears in the page."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_kit import LoopbackBot
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from linepush.emulator import RunningEmulator, running
from linepush.emulator.webhooks import signature

pytestmark = pytest.mark.e2e
USER = "U" + "1f" * 16
WAIT = 15.0  # a bound on waiting for the page to catch up, never a pause


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        message = "the inbox tests need Chromium and chromedriver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return browser, driver


@pytest.fixture
def browser() -> Iterator[Any]:
    binary, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="linepush-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,820",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _call(url: str, body: dict[str, Any], token: str | None = None, method: str = "POST") -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method=method)
    with urllib.request.urlopen(request, timeout=WAIT) as response:  # loopback only
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
        return answer


@pytest.fixture
def served() -> Iterator[RunningEmulator]:
    with running() as emulator:
        yield emulator


def _wait_for_text(browser: Any, text: str) -> None:
    WebDriverWait(browser, WAIT, poll_frequency=0.05).until(
        lambda b: text in b.find_element("id", "messages").text, f"{text!r} never appeared in the page"
    )


def test_a_push_appears_and_a_user_talks_to_the_bot(served: RunningEmulator, browser: Any) -> None:
    state = served.state
    channel = state.create_channel(name="Alerts bot")
    token = state.issue_long_lived(channel.channel_id)
    replies: list[int] = []

    def bot_replies(headers: dict[str, str], body: bytes) -> None:
        # The bot checks the signature as a real one must, then answers with the event's reply token.
        assert headers["X-Line-Signature"] == signature(channel.channel_secret, body)
        for event in json.loads(body)["events"]:
            if event["type"] == "message":
                text = f"echo: {event['message']['text']}"
                _call(
                    f"{served.url}/v2/bot/message/reply",
                    {"replyToken": event["replyToken"], "messages": [{"type": "text", "text": text}]},
                    token,
                )
                replies.append(1)

    with LoopbackBot(on_event=bot_replies) as bot:
        _call(f"{served.url}/_emulator/channels/{channel.channel_id}/webhook", {"url": bot.url}, method="PUT")
        _call(
            f"{served.url}/_emulator/channels/{channel.channel_id}/events",
            {"type": "follow", "source": {"type": "user", "userId": USER}},
        )
        browser.get(f"{served.url}/_emulator/")
        _wait_for_text(browser, "follow")
        assert channel.channel_secret not in browser.page_source  # not shown unless asked

        # A push while the page is open shows up without a reload, line breaks and emoji kept.
        marker = browser.execute_script("window.__same_page = true; return 1")
        assert marker == 1
        _call(
            f"{served.url}/v2/bot/message/push",
            {
                "to": USER,
                "notificationDisabled": True,
                "messages": [
                    {"type": "text", "text": "Disk full on db-1 🔥\nfree: 2%"},
                    {"type": "sticker", "packageId": "446", "stickerId": "1988"},
                    {
                        "type": "flex",
                        "altText": "Weekly report",
                        "contents": {
                            "type": "bubble",
                            "body": {
                                "type": "box",
                                "layout": "vertical",
                                "contents": [{"type": "text", "text": "ok"}],
                            },
                        },
                    },
                ],
            },
            token,
        )
        _wait_for_text(browser, "Disk full on db-1 🔥\nfree: 2%")
        page = browser.find_element("id", "messages").text
        assert (
            "sticker 446 / 1988" in page and "flex: Weekly report" in page and "notificationDisabled" in page
        )
        assert browser.execute_script("return window.__same_page === true")
        # The flex message's JSON is one click away.
        flex = browser.find_element("xpath", "//div[contains(@class,'bubble')][contains(., 'Weekly report')]")
        flex.find_element("tag name", "summary").click()
        assert '"layout": "vertical"' in flex.find_element("tag name", "pre").text
        flex.find_element("tag name", "summary").click()

        # A refused send is shown, marked, with its request id.
        try:
            _call(f"{served.url}/v2/bot/message/push", {"to": USER, "messages": []}, token)
        except urllib.error.HTTPError as exc:
            refused_id = exc.headers["x-line-request-id"]
        _wait_for_text(browser, f"request {refused_id}")
        assert "refused 400" in browser.find_element("id", "messages").text

        box = browser.find_element("id", "compose-text")
        box.send_keys("status?")
        browser.find_element("id", "send-text").click()
        _wait_for_text(browser, "echo: status?")
    assert replies == [1]
    assert len(bot.received) == 2  # the follow, then the text
    assert "webhook 200" in browser.find_element("id", "messages").text

    shot = os.environ.get("LINEPUSH_INBOX_SCREENSHOT")
    if shot:  # the README's picture of the inbox
        Path(shot).write_bytes(browser.get_screenshot_as_png())

    browser.find_element("css selector", "[data-channel] button.act").click()  # "show secret", asked for
    WebDriverWait(browser, WAIT, poll_frequency=0.05).until(lambda b: channel.channel_secret in b.page_source)


def test_a_group_from_the_page_and_a_retry_key_repeat(served: RunningEmulator, browser: Any) -> None:
    state = served.state
    channel = state.create_channel(name="Ops")
    token = state.issue_long_lived(channel.channel_id)
    group = "C" + "2e" * 16
    browser.get(f"{served.url}/_emulator/")
    WebDriverWait(browser, WAIT, poll_frequency=0.05).until(
        lambda b: b.find_elements("id", f"add-{channel.channel_id}")
    )
    # A conversation the page has not seen yet is opened by its id; the bot joins, a member posts.
    add = browser.find_element("id", f"add-{channel.channel_id}")
    add.send_keys(group + "\n")
    browser.find_element("id", "join").click()
    _wait_for_text(browser, "join")
    browser.find_element("id", "compose-user").send_keys(USER)
    browser.find_element("id", "compose-text").send_keys("who is on call?")
    browser.find_element("id", "send-text").click()
    _wait_for_text(browser, "who is on call?")
    assert state.chat(state.channels[channel.channel_id], group).members == [USER]
    assert "webhook not sent" in browser.find_element("id", "messages").text  # the channel has no webhook URL

    headers = {"X-Line-Retry-Key": "123e4567-e89b-12d3-a456-426614174000"}
    body = {"to": group, "messages": [{"type": "text", "text": "on call: ana"}]}
    for _ in range(2):
        request = urllib.request.Request(
            f"{served.url}/v2/bot/message/push",
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}", **headers},
        )
        try:
            urllib.request.urlopen(request, timeout=WAIT).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 409
            repeat_id = exc.headers["x-line-request-id"]
    _wait_for_text(browser, f"request {repeat_id}")
    preview = "https://127.0.0.1:9/preview.png"  # never answers: loopback, a closed port
    image = {
        "type": "image",
        "originalContentUrl": "https://127.0.0.1:9/full.png",
        "previewImageUrl": preview,
    }
    _call(f"{served.url}/v2/bot/message/push", {"to": group, "messages": [image]}, token)
    WebDriverWait(browser, WAIT, poll_frequency=0.05).until(
        lambda b: b.find_elements("css selector", f'#messages img[src="{preview}"]'), "no thumbnail"
    )
    page = browser.find_element("id", "messages").text
    assert "409 retry-key repeat" in page and page.count("on call: ana") == 2

"""Hostile model output renders inert in Chromium.

The page and its CSP come from a real `manage.py serve`; the chat socket and the stored
conversation are answered by Playwright with exact bytes, because the real model cannot be
steered to produce them. Nothing may run (a page-side flag stays unset), no request may
leave for another host, and the CSP must not have to block anything: the sanitiser alone
makes the output inert.
"""

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.system]

CONVERSATION = "6f1c2a9e-0d9b-4b7e-9a43-2f5d8c1e7a10"
ANSWER_ID = "0b8c4e2d-3f6a-4d1b-8e7c-9a2b5c6d7e8f"

HOSTILE = "\n\n".join(
    [
        "<script>window.__pwned = 'script'</script>",
        '<img src="x" onerror="window.__pwned = \'img\'">',
        "[click me](javascript:window.__pwned='link')",
        "[data link](data:text/html,<script>window.__pwned='data'</script>)",
        "![tracker](https://evil.example/pixel.png)",
        '<a href="https://evil.example/" onclick="window.__pwned=\'click\'">html link</a>',
        '<iframe src="https://evil.example/"></iframe>',
        "<style>body { display: none }</style>",
        '<svg onload="window.__pwned=\'svg\'"><circle r="5"/></svg>',
        "```html\n<script>window.__pwned = 'code'</script>\n<b>not bold</b>\n```",
        "A very long line: " + "x" * 4000,
        "**Bold** and `code` still render.",
    ]
)


def stored_conversation():
    return {
        "id": CONVERSATION,
        "title": "<img src=x onerror=window.__pwned='title'>",
        "messages": [
            {
                "id": "1",
                "role": "user",
                "content": "<b>hi</b><script>window.__pwned='user'</script>",
                "status": "complete",
                "model": "",
                "created_at": "2026-11-28T08:00:00+00:00",
            },
            {
                "id": ANSWER_ID,
                "role": "assistant",
                "content": HOSTILE,
                "status": "complete",
                "model": "m",
                "created_at": "2026-11-28T08:00:01+00:00",
            },
        ],
    }


def answer_over_the_socket(ws):
    def on_message(message):
        frame = json.loads(message)
        if frame.get("type") != "chat.send":
            return
        ws.send(
            json.dumps(
                {
                    "type": "chat.started",
                    "conversation": CONVERSATION,
                    "message": ANSWER_ID,
                    "model": "m",
                    "client_id": frame["client_id"],
                }
            )
        )
        for start in range(0, len(HOSTILE), 97):
            ws.send(
                json.dumps(
                    {
                        "type": "chat.delta",
                        "message": ANSWER_ID,
                        "text": HOSTILE[start : start + 97],
                    }
                )
            )
        ws.send(
            json.dumps(
                {
                    "type": "chat.done",
                    "message": ANSWER_ID,
                    "finish_reason": "stop",
                    "usage": {"prompt_tokens": 5, "completion_tokens": 50},
                }
            )
        )

    ws.on_message(on_message)


def test_hostile_answers_render_inert(site, page_for, screenshots):
    tess = Account("tess", "tess's long passphrase 4")
    create_account(site, tess.username, tess.password)
    page = page_for(site)
    sign_in(page, tess)

    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.route_web_socket("**/ws/chat/", answer_over_the_socket)
    page.route(
        "**/chat/api/conversations",
        lambda route: route.fulfill(
            json={
                "conversations": [
                    {
                        "id": CONVERSATION,
                        "title": stored_conversation()["title"],
                        "updated_at": "2026-11-28T08:00:01+00:00",
                    }
                ]
            }
        ),
    )
    page.route(
        f"**/chat/api/conversations/{CONVERSATION}",
        lambda route: route.fulfill(json=stored_conversation()),
    )
    page.route(
        "**/chat/api/status",
        lambda route: route.fulfill(json={"state": "ready", "model": "m", "workers": 1}),
    )

    page.goto("/")
    page.fill("#composer-input", "Say something dangerous.")
    page.press("#composer-input", "Enter")
    answer = page.locator(f'.message-assistant[data-message-id="{ANSWER_ID}"]')
    expect(answer).to_contain_text("Bold and code still render", timeout=20_000)
    page.wait_for_timeout(500)
    screenshots.take(page, "streamed")

    page.goto(f"/#c/{CONVERSATION}")
    page.reload()
    expect(page.locator(f'.message-assistant[data-message-id="{ANSWER_ID}"]')).to_contain_text(
        "still render", timeout=20_000
    )
    page.wait_for_timeout(500)
    screenshots.take(page, "stored")

    assert page.evaluate("window.__pwned") is None
    # The answer's own content (the bubble around it has the page's own icons).
    rendered = page.locator(".message-assistant").last.locator(".message-body")
    # svg.icon is the page's own copy button; the sanitiser lets no class "icon" through.
    dangerous = rendered.locator("script, iframe, img, style, svg:not(.icon)").evaluate_all(
        "nodes => nodes.map(n => n.outerHTML)"
    )
    assert dangerous == []
    assert rendered.locator("strong").count() >= 1
    hrefs = rendered.locator("a[href]").evaluate_all("links => links.map(a => a.href)")
    assert all(href.startswith(("http:", "https:", "mailto:")) for href in hrefs), hrefs
    assert "<b>not bold</b>" in rendered.locator("pre code").first.inner_text()
    hosts = {url.split("/")[2] for url in requests if url.startswith(("http", "ws"))}
    assert hosts <= {f"localhost:{site.port}"}, hosts
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= page.viewport_size["width"]
    assert page.csp_violations == []

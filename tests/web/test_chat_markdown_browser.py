"""The chatroom renders assistant replies as a safe markdown subset (a real browser, the real gateway,
a fake upstream that echoes the prompt word by word): formatting appears, while `<script>`, raw HTML
and `javascript:` links stay inert text; every prefix of a streamed reply renders safely; the page
keeps passing axe-core (no critical or serious violation) at 375 and 1440 px."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.support.gateway import GatewayProcess
from tests.web.browser import RESULTS_DIR, axe_source, axe_violations
from tests.web.conftest import acme_gateway, browser_sign_up
from tests.web.test_browser_journey import shot

EMAIL = "markdown@example.com"
MODEL = "acme/mock-model"  # answers "Echo: <the prompt>", streamed one word at a time
PROMPT = """Here is **bold**, *italic* and `<b>code</b>`.

- item one
- item [two](https://example.com/docs?a=1&b=2)

1. first
2. second

```python
print("<script>alert(1)</script>")
```

<script>window.__pwned = 1; alert(1)</script> <img src=x onerror="window.__pwned=2">
[click me](javascript:window.__pwned=3) [also](JAVASCRIPT:alert(1)) [data](data:text/html,hi)"""

pytestmark = pytest.mark.timeout(300)

# Every prefix of the source, rendered and parsed inertly (a <template> runs nothing): what could run?
CHECK_PREFIXES = """(source) => {
  const problems = [];
  let fencedCode = 0;
  for (let end = 0; end <= source.length; end++) {
    const holder = document.createElement("template");
    holder.innerHTML = PolyMarkdown.render(source.slice(0, end));
    const html = holder.content;
    if (html.querySelector("script, img, iframe, object, embed, style")) problems.push([end, "element"]);
    for (const el of html.querySelectorAll("*")) {
      for (const attr of el.attributes) {
        if (attr.name.startsWith("on")) problems.push([end, attr.name]);
        if (attr.name === "href" && !/^https?:\\/\\//.test(attr.value)) problems.push([end, attr.value]);
      }
    }
    if (html.querySelector("pre code[data-lang='python']")) fencedCode++;
  }
  return { problems, fencedCode };
}"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAIUpstream) -> Iterator[GatewayProcess]:
    with acme_gateway(tmp_path_factory.mktemp("markdown-gateway"), fake_upstream) as process:
        yield process


def test_replies_render_safe_markdown(gateway: GatewayProcess, chromium: Browser) -> None:
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        browser_sign_up(page, gateway.root_url, EMAIL)
        gateway.create_key(name="credits", account=EMAIL, credits="5")  # the account's balance
        page.goto(gateway.root_url + "/chat")
        page.locator("#model-0").select_option(MODEL)
        page.get_by_label("Message").fill(PROMPT)
        page.get_by_role("button", name="Send").click()
        turn = page.locator(f'.column[data-model="{MODEL}"] .turn').last
        expect(turn).to_have_attribute("data-status", "done", timeout=60_000)
        reply = turn.locator(".reply")

        expect(reply.locator("p strong")).to_have_text("bold")
        expect(reply.locator("p em")).to_have_text("italic")
        expect(reply.locator("p code")).to_have_text("<b>code</b>")
        expect(reply.locator("ul > li")).to_have_count(2)
        expect(reply.locator("ol > li")).to_have_text(["first", "second"])
        expect(reply.locator("pre code")).to_have_text('print("<script>alert(1)</script>")')
        links = reply.locator("a")
        expect(links).to_have_count(1)
        assert links.get_attribute("href") == "https://example.com/docs?a=1&b=2"
        assert links.get_attribute("rel") == "noopener noreferrer nofollow"
        expect(reply.locator("script, img, [onerror]")).to_have_count(0)
        text = reply.inner_text()
        assert "<script>window.__pwned = 1; alert(1)</script>" in text  # shown as text
        assert "[click me](javascript:window.__pwned=3)" in text and "[data](data:text/html,hi)" in text
        assert page.evaluate("window.__pwned") is None and dialogs == []
        shot(page, "chat-markdown")

        found = page.evaluate(CHECK_PREFIXES, "Echo: " + PROMPT)
        assert found["problems"] == [], found["problems"][:5]
        assert found["fencedCode"] > 20  # an open fence renders as code while it streams

        source = axe_source()
        report = {}
        for width in (375, 1440):
            page.set_viewport_size({"width": width, "height": 900})
            report[width] = axe_violations(page, source)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"/chat with a markdown reply is {overflow}px wider than {width}px"
        (RESULTS_DIR / "axe-chat-markdown.json").write_text(json.dumps(report, indent=2))
        serious = {w: [v for v in found if v["impact"] in ("critical", "serious")] for w, found in report.items()}
        assert not any(serious.values()), serious
    finally:
        context.close()

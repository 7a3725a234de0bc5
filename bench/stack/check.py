"""Wait for a relay (or the nginx mock) to answer, then verify both paths.

usage: check.py BASE_URL FIXTURE_DIR relay|nginx [timeout_s]
Exit 0 and print "ok" if the non-streaming and streaming answers are correct.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def post(url: str, body: bytes) -> tuple[int, str, bytes]:
    hdrs = {"content-type": "application/json"}
    req = urllib.request.Request(url, data=body, method="POST", headers=hdrs)  # noqa: S310 (127.0.0.1 only)
    with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310
        return r.status, r.headers.get("content-type", ""), r.read()


def main() -> int:
    base, fx, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 15.0
    req = Path(fx, "request.json").read_bytes()
    req_s = Path(fx, "request_stream.json").read_bytes()
    if kind == "relay":
        url = url_s = base + "/api/v1/chat/completions"
    else:
        url, url_s = base + "/v1/chat/completions", base + "/v1/sse/chat/completions"

    deadline = time.monotonic() + timeout
    while True:
        try:
            status, ctype, body = post(url, req)
            break
        except urllib.error.HTTPError as e:
            print(f"HTTP {e.code} from {url}")
            return 1
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                print(f"not ready after {timeout}s: {url}")
                return 1
            time.sleep(0.1)

    problems = []
    obj = json.loads(body)
    if status != 200 or "json" not in ctype:
        problems.append(f"non-stream status={status} ctype={ctype}")
    if kind == "relay" and (
        obj.get("provider") != "OpenAI" or obj.get("model") != "openai/gpt-4o-mini" or not obj["id"].startswith("gen-")
    ):
        problems.append(f"non-stream not rewritten: {obj.get('id')} {obj.get('model')} {obj.get('provider')}")

    status, ctype, body = post(url_s, req_s)
    events = [e for e in body.split(b"\n\n") if e.strip()]
    if status != 200 or "text/event-stream" not in ctype:
        problems.append(f"stream status={status} ctype={ctype}")
    if len(events) != 22 or events[-1] != b"data: [DONE]":
        problems.append(f"stream: {len(events)} events, last={events[-1][:40]!r}")
    if kind == "relay":
        chunks = [json.loads(e[6:]) for e in events[:-1]]
        ids = {c["id"] for c in chunks}
        rewritten = all(c.get("provider") == "OpenAI" and c["model"] == "openai/gpt-4o-mini" for c in chunks)
        if len(ids) != 1 or not rewritten:
            problems.append("stream chunks not rewritten")
        if "usage" not in chunks[-1]:
            problems.append("stream: usage chunk missing")
    print("; ".join(problems) if problems else "ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

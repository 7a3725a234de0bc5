"""(e) JSON micro-benchmark: parse + rewrite + encode on the real bench bodies.

Per library, times (best of 5 repeats, timeit) of:
  request   client body -> dict, set model, encode          (280 B)
  response  upstream completion -> dict, set id/model/provider, encode (~690 B)
  stream    all 21 SSE chunk payloads parsed, rewritten, re-encoded (one stream)
Prints "@@JSON {...}" lines for report.py. Keep it short: ~1-2 s per library.
"""

from __future__ import annotations

import json
import sys
import timeit
from collections.abc import Callable
from typing import Any

import fixtures


def libs() -> dict[str, tuple[Callable[[Any], Any], Callable[[Any], bytes]]]:
    out: dict[str, tuple[Callable[[Any], Any], Callable[[Any], bytes]]] = {}
    try:
        import msgspec

        out["msgspec"] = (msgspec.json.Decoder().decode, msgspec.json.Encoder().encode)
    except ImportError:
        pass
    try:
        import orjson

        out["orjson"] = (orjson.loads, orjson.dumps)
    except ImportError:
        pass
    enc = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    out["json (stdlib)"] = (json.loads, lambda o: enc(o).encode())
    return out


def main() -> None:
    req = fixtures.request_body()
    resp = fixtures.chat_body()
    chunks = [line[6:] for line in fixtures.sse_body().split(b"\n\n") if line.startswith(b"data: {")]
    assert len(chunks) == 21
    for name, (dec, enc) in libs().items():

        def request(dec=dec, enc=enc) -> bytes:  # type: ignore[no-untyped-def]
            o = dec(req)
            o["model"] = "gpt-4o-mini"
            return enc(o)

        def response(dec=dec, enc=enc) -> bytes:  # type: ignore[no-untyped-def]
            o = dec(resp)
            o["id"] = "gen-1-1"
            o["model"] = "openai/gpt-4o-mini"
            o["provider"] = "OpenAI"
            return enc(o)

        def stream(dec=dec, enc=enc) -> None:  # type: ignore[no-untyped-def]
            for c in chunks:
                o = dec(c)
                o["id"] = "gen-1-1"
                o["model"] = "openai/gpt-4o-mini"
                o["provider"] = "OpenAI"
                enc(o)

        res = {"lib": name}
        for label, fn, n in (("request", request, 20000), ("response", response, 20000), ("stream", stream, 1000)):
            best = min(timeit.repeat(fn, number=n, repeat=5)) / n
            res[label + "_us"] = round(best * 1e6, 2)
        print("@@JSON " + json.dumps(res), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

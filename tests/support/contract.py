"""OpenRouter OpenAPI contract checker: validates every JSON response and SSE chunk the suite receives.

Use `validate_response` / `validate_stream_chunk` directly, or let `validating_http_client()` (for the
openai SDK, httpx2 under the hood), `validating_async_http_client()` and `ContractSession` (requests)
check everything that passes. Paths the spec does not know (e.g. `/healthz`) are let through unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import requests
import yaml
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_ENV = "POLYROUTE_OPENAPI_SPEC"
DEFAULT_SPEC = Path(__file__).resolve().parents[2].parent / "shared/reference/openrouter/openapi-2026-08.yaml"
_SPEC_URI = "urn:polyroute:openrouter-openapi"
_PREFIXES = ("/api/v1", "/v1")
_ALIASES = {"/auth/key": "/key"}  # OpenRouter's legacy name for the same document
CHAT_STREAM_CHUNK = "/components/schemas/ChatStreamChunk"
# Enums listing OpenRouter's own catalogue, which an operator extends (provider `acme`): any string passes.
OPEN_ENUMS = ("ProviderName",)


def spec_path() -> Path:
    path = Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC)
    if not path.is_file():
        raise FileNotFoundError(f"OpenAPI spec not found at {path} (set {SPEC_ENV})")  # fail, never skip
    return path


def load_spec(path: Path) -> dict[str, Any]:
    """Parse the YAML once per content version; later runs read a JSON copy (10x faster)."""
    raw = path.read_bytes()
    cached = Path(tempfile.gettempdir()) / f"polyroute-openapi-{hashlib.sha256(raw).hexdigest()[:24]}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    # A JSON round trip normalises YAML-isms (integer status keys, dates) the same way on every run.
    text = json.dumps(yaml.load(raw, Loader=yaml.CSafeLoader), default=str)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, cached)  # atomic, so parallel workers never read half a file
    return json.loads(text)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _template_regex(template: str) -> re.Pattern[str]:
    """`/models/{author}/{slug}/endpoints` -> a regex where each parameter is one path segment."""
    parts = re.split(r"\{[^/}]+\}", template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts) + "/?")


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class ContractChecker:
    """Validates documents against one parsed spec; counts what it validated."""

    def __init__(self, spec: dict[str, Any], open_enums: tuple[str, ...] = OPEN_ENUMS) -> None:
        schemas = dict(spec["components"]["schemas"])  # copy what we change; the parsed spec is shared
        for name in open_enums:
            schemas[name] = {k: v for k, v in schemas[name].items() if k != "enum"}
        self.spec = spec = {**spec, "components": {**spec["components"], "schemas": schemas}}
        self._registry: Registry = Registry().with_resource(_SPEC_URI, DRAFT202012.create_resource(spec))
        self._validators: dict[str, Draft202012Validator] = {}
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # "response" and "chunk"
        templates = sorted(spec["paths"], key=lambda t: (t.count("{"), -len(t)))  # literal paths win
        self._routes = [(_template_regex(t), t) for t in templates]

    @property
    def validated(self) -> int:
        return self.counts.total()

    # --- lookup ----------------------------------------------------------------------------------
    def template_for(self, path: str) -> str | None:
        path = urlsplit(path).path
        for prefix in _PREFIXES:
            if path == prefix or path.startswith(prefix + "/"):
                path = path[len(prefix) :]
                break
        path = _ALIASES.get(path, path)
        return next((t for rx, t in self._routes if rx.fullmatch(path)), None)

    def _response_spec(self, method: str, path: str, status: int) -> tuple[str, str, dict[str, Any]] | None:
        """(label, JSON pointer of the response object, the response object); None for unknown paths."""
        template = self.template_for(path)
        operation = self.spec["paths"].get(template or "", {}).get(method.lower())
        if template is None or operation is None:
            return None
        label = f"{method.upper()} {template} -> {status}"
        responses = operation.get("responses", {})
        key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
        if key is None:
            raise AssertionError(f"{label}: status {status} is not documented (documented: {sorted(responses)})")
        pointer = f"/paths/{_escape(template)}/{method.lower()}/responses/{_escape(key)}"
        return label, pointer, responses[key]

    def _resolve(self, pointer: str) -> tuple[str, Any]:
        """Follow `$ref`s from a pointer to the schema they name; returns its pointer and body."""
        node: Any = self.spec
        for token in pointer.lstrip("/").split("/"):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        if isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
            return self._resolve(node["$ref"][1:])
        return pointer, node

    # --- validation ------------------------------------------------------------------------------
    def check(self, pointer: str, document: Any, label: str, kind: str = "response") -> None:
        validator = self._validators.get(pointer)
        if validator is None:
            validator = Draft202012Validator({"$ref": f"{_SPEC_URI}#{pointer}"}, registry=self._registry)
            self._validators[pointer] = validator
        errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
        with self._lock:
            self.counts[kind] += 1
        if errors:
            raise AssertionError(self._report(label, pointer, document, errors))

    @staticmethod
    def _report(label: str, pointer: str, document: Any, errors: list[ValidationError]) -> str:
        lines = [f"{label} does not match the OpenRouter contract (schema #{pointer}):"]
        for error in errors[:15]:
            lines.append(f"  {error.json_path}: {_short(error.message)}")
            if error.context:  # anyOf/oneOf: say what the closest branch wanted
                closest = best_match(error.context)
                lines.append(f"      closest branch: {closest.json_path}: {_short(closest.message)}")
        if len(errors) > 15:
            lines.append(f"  … and {len(errors) - 15} more")
        lines.append(f"  document: {_short(json.dumps(document, default=str), 600)}")
        return "\n".join(lines)

    def validate_response(self, method: str, path: str, status: int, body: Any) -> None:
        found = self._response_spec(method, path, status)
        if found is None:
            raise AssertionError(f"{method.upper()} {path} is not an operation of the OpenRouter spec")
        label, pointer, response = found
        if "application/json" not in response.get("content", {}):
            raise AssertionError(f"{label}: the spec documents no application/json body")
        self.check(f"{pointer}/content/application~1json/schema", body, label)

    def validate_stream_chunk(self, chunk: Any, pointer: str = CHAT_STREAM_CHUNK, label: str = "chunk") -> None:
        self.check(pointer, chunk, f"SSE {label}", kind="chunk")

    def expect(self, method: str, path: str, status: int, content_type: str | None) -> Expectation | None:
        """What a live response must satisfy, decided from its head; None when there is nothing to check."""
        found = self._response_spec(method, path, status)
        if found is None:
            return None
        label, pointer, response = found
        content = response.get("content") or {}
        media = (content_type or "").split(";")[0].strip().lower()
        if not content:
            return None  # nothing documented (e.g. 204)
        if media not in content:
            raise AssertionError(f"{label}: content type {media!r} is not documented (expected {sorted(content)})")
        schema_pointer = f"{pointer}/content/{_escape(media)}/schema"
        if media == "text/event-stream":
            resolved, schema = self._resolve(schema_pointer)
            if isinstance(schema, dict) and "data" in schema.get("properties", {}):
                resolved += "/properties/data"  # the spec wraps each event as {"data": <chunk>}
            return Expectation(self, label, resolved, stream=True)
        if media == "application/json" or media.endswith("+json"):
            return Expectation(self, label, schema_pointer, stream=False)
        return None  # e.g. the RSS flavour of /models


class Expectation:
    """The contract for one live response: a JSON body, or a stream of SSE chunks fed as bytes arrive."""

    def __init__(self, checker: ContractChecker, label: str, pointer: str, stream: bool) -> None:
        self.checker, self.label, self.pointer, self.stream = checker, label, pointer, stream
        self._buffer = b""
        self._data: list[str] = []
        self.chunks = 0
        self.done = False

    def body(self, raw: bytes) -> None:
        try:
            document = json.loads(raw)
        except ValueError:
            raise AssertionError(f"{self.label}: body is not JSON: {_short(raw.decode(errors='replace'))}") from None
        self.checker.check(self.pointer, document, self.label)

    def feed(self, data: bytes) -> None:
        """Consume stream bytes; validate each complete event's data as soon as its blank line arrives."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw_line in lines:
            line = raw_line.rstrip(b"\r").decode()
            if not line:
                self._dispatch()
            elif line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))
            # `:` comments (keep-alives), `event:`, `id:` and `retry:` lines carry no JSON

    def _dispatch(self) -> None:
        data, self._data = "\n".join(self._data), []
        if not data:
            return
        if data == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise AssertionError(f"{self.label}: SSE data is not JSON: {_short(data)}") from None
        self.chunks += 1
        self.checker.validate_stream_chunk(chunk, self.pointer, f"{self.label} chunk #{self.chunks}")


@cache
def default_checker() -> ContractChecker:
    return ContractChecker(load_spec(spec_path()))


def validate_response(method: str, path: str, status: int, body: Any) -> None:
    default_checker().validate_response(method, path, status, body)


def validate_stream_chunk(chunk: dict[str, Any]) -> None:
    default_checker().validate_stream_chunk(chunk)


# --- httpx2 (the openai SDK's HTTP client) ---------------------------------------------------------
def _sse_expectation(checker: ContractChecker, request: httpx2.Request, response: httpx2.Response) -> Any:
    expectation = checker.expect(
        request.method, request.url.path, response.status_code, response.headers.get("content-type")
    )
    if expectation and expectation.stream and response.headers.get("content-encoding", "identity") != "identity":
        raise AssertionError(f"{expectation.label}: SSE must not be content-encoded (it defeats streaming)")
    return expectation


def _decoded(raw: bytes, response: httpx2.Response) -> bytes:
    return httpx2.Response(200, headers=response.headers, stream=httpx2.ByteStream(raw)).read()


class _TeeStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    def __init__(self, inner: Any, expectation: Expectation) -> None:
        self._inner, self._expectation = inner, expectation

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._expectation.feed(chunk)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._expectation.feed(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _rebuilt(response: httpx2.Response, stream: Any) -> httpx2.Response:
    return httpx2.Response(
        response.status_code, headers=response.headers, stream=stream, extensions=response.extensions
    )


class ContractTransport(httpx2.BaseTransport):
    """Wraps a transport: JSON bodies are read and checked up front, SSE chunks as they pass."""

    def __init__(self, checker: ContractChecker | None = None, inner: httpx2.BaseTransport | None = None) -> None:
        self.checker = checker or default_checker()
        self._inner = inner or httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._inner.handle_request(request)
        expectation = _sse_expectation(self.checker, request, response)
        if expectation is None:
            return response
        if expectation.stream:
            return _rebuilt(response, _TeeStream(response.stream, expectation))
        try:
            raw = b"".join(response.stream)
        finally:
            response.stream.close()
        expectation.body(_decoded(raw, response))
        return _rebuilt(response, httpx2.ByteStream(raw))

    def close(self) -> None:
        self._inner.close()


class AsyncContractTransport(httpx2.AsyncBaseTransport):
    def __init__(self, checker: ContractChecker | None = None, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self.checker = checker or default_checker()
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        expectation = _sse_expectation(self.checker, request, response)
        if expectation is None:
            return response
        if expectation.stream:
            return _rebuilt(response, _TeeStream(response.stream, expectation))
        try:
            raw = b"".join([part async for part in response.stream])
        finally:
            await response.stream.aclose()
        expectation.body(_decoded(raw, response))
        return _rebuilt(response, httpx2.ByteStream(raw))

    async def aclose(self) -> None:
        await self._inner.aclose()


def validating_http_client(checker: ContractChecker | None = None, **kwargs: Any) -> httpx2.Client:
    """An httpx2.Client for `openai.OpenAI(http_client=...)` that checks every response."""
    import openai  # the SDK's defaults (timeouts, redirects) keep its behaviour unchanged

    return openai.DefaultHttpxClient(transport=ContractTransport(checker), **kwargs)


def validating_async_http_client(checker: ContractChecker | None = None, **kwargs: Any) -> httpx2.AsyncClient:
    import openai

    return openai.DefaultAsyncHttpxClient(transport=AsyncContractTransport(checker), **kwargs)


# --- requests ---------------------------------------------------------------------------------------
class _TeeRaw:
    """Stands in for urllib3's response in `requests.Response.raw`, feeding the SSE checker."""

    def __init__(self, raw: Any, expectation: Expectation) -> None:
        self._raw, self._expectation = raw, expectation

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            self._expectation.feed(chunk)
            yield chunk

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        data: bytes = self._raw.read(*args, **kwargs)
        self._expectation.feed(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class ContractSession(requests.Session):
    """A requests session that checks every response; relative URLs are joined to `base_url`."""

    def __init__(self, base_url: str = "", api_key: str | None = None, checker: ContractChecker | None = None) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.checker = checker or default_checker()
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.hooks["response"].append(self._check)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if self.base_url and not url.startswith(("http://", "https://")):
            url = f"{self.base_url}/{url.lstrip('/')}"
        return super().request(method, url, *args, **kwargs)

    def _check(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        method, path = response.request.method or "GET", urlsplit(response.request.url or "").path
        expectation = self.checker.expect(method, path, response.status_code, response.headers.get("content-type"))
        if expectation is None:
            return response
        if expectation.stream:
            response.raw = _TeeRaw(response.raw, expectation)
        else:
            expectation.body(response.content)
        return response

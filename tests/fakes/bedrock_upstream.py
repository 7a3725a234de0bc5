"""A fake Amazon Bedrock runtime: `POST /model/{modelId}/converse` and `/converse-stream` on 127.0.0.1.

Every request must carry a valid SigV4 signature for service `bedrock` (checked by recomputing it with
the fake's own credentials); bodies are checked like Converse checks them (alternating roles, blank
text, toolUse/toolResult pairing and toolConfig, the thinking budget); streams are AWS event-stream
frames with real prelude and message CRCs. The model id picks the scenario (scripted_model.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import hashlib
import json
import re
import struct
import zlib
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes import scripted_model as sm
from tests.fakes.loopback import Frame, LoopbackUpstream

ACCESS_KEY_ID = "AKIAFAKEBEDROCK00001"
SECRET_ACCESS_KEY = "fake/secret/access/key/for/bedrock/0000"
REGION = "us-east-1"
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "content_filtered"}
_ERRORS = {
    400: ("ValidationException", "this fake rejects the request"),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "The service is unavailable. Please try again later."),
}
_SCENARIO_STATUS = {400: 400, 401: 403, 429: 429, 500: 500, 503: 503, 529: 503}
_TOP_KEYS = frozenset(
    {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "additionalModelRequestFields",
     "promptVariables", "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig", "serviceTier",
     "outputConfig"}
)  # fmt: skip
_BLOCK_KEYS = frozenset({"text", "image", "document", "toolUse", "toolResult", "cachePoint", "reasoningContent"})
_VENDOR = re.compile(r"^(?:(?:us|eu|apac|global)\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai)\.")
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


def error_response(status: int, kind: str | None = None, message: str | None = None) -> web.Response:
    kind = kind or _ERRORS[status][0]
    body = {"message": message or _ERRORS.get(status, ("", "error"))[1]}
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return web.json_response(body, status=status, headers={**headers, "x-amzn-RequestId": "fake-request-id"})


MODERN_CLAUDE = "claude-opus-4-7-"  # Claude 4.7+: adaptive thinking only, no sampling knobs


def _modern_claude_problem(body: dict[str, Any]) -> str | None:
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking") or {}
    inference = body.get("inferenceConfig") or {}
    for name in ("temperature", "topP"):
        if name in inference:
            return f"The model returned the following errors: `{name}` is deprecated for this model."
    if thinking.get("type") == "enabled":
        return "The model returned the following errors: thinking.type.enabled is not supported for this model."
    return None


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total and headers length, CRC), string headers, payload, CRC."""
    raw_headers = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps({**data, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"[: 1 + len(kind)]}).encode()
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, payload)


def exception_frame(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}).encode())


def _text_of_result(result: dict[str, Any]) -> str:
    return " ".join(c["text"] if "text" in c else json.dumps(c.get("json")) for c in result.get("content") or [])


_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. "
    "Make sure the conversation alternates between user and assistant roles and try again."
)


def validate(body: dict[str, Any]) -> str | None:
    for key in body:
        if key not in _TOP_KEYS:
            return f'Unknown parameter in input: "{key}"'
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "The messages field is required."
    if messages[0].get("role") != "user":
        return "A conversation must start with a user message."
    uses_tools = False
    previous_uses: set[str] = set()
    for i, message in enumerate(messages):
        if i and message.get("role") == messages[i - 1].get("role"):
            return _ALTERNATE
        results: set[str] = set()
        uses: set[str] = set()
        for j, block in enumerate(message.get("content") or []):
            if len(block) != 1 or next(iter(block)) not in _BLOCK_KEYS:
                return f"Invalid content block at messages.{i}.content.{j}: exactly one member must be set"
            if "text" in block and not str(block["text"]).strip():
                return f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank."
            if "image" in block:
                image = block["image"]
                try:
                    base64.b64decode(image["source"]["bytes"], validate=True)
                except (KeyError, TypeError, binascii.Error):
                    return f"messages.{i}.content.{j}.image.source.bytes: invalid base64"
                if image.get("format") not in ("png", "jpeg", "gif", "webp"):
                    return f"messages.{i}.content.{j}.image.format: must be png, jpeg, gif or webp"
            if "toolUse" in block:
                uses.add(block["toolUse"].get("toolUseId"))
            if "toolResult" in block:
                results.add(block["toolResult"].get("toolUseId"))
        uses_tools = uses_tools or bool(uses or results)
        if results != previous_uses and (results or previous_uses):
            return (
                f"The toolResult blocks at messages.{i}.content do not match the toolUse blocks of the previous turn."
            )
        previous_uses = uses
    if uses_tools and "toolConfig" not in body:
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    inference = body.get("inferenceConfig") or {}
    if not 0 <= inference.get("temperature", 0) <= 1:
        return "inferenceConfig.temperature: must be between 0 and 1"
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens", 0)
        if budget < 1024 or budget >= inference.get("maxTokens", 0):
            return "The model returned the following errors: max_tokens must be greater than thinking.budget_tokens"
        if "temperature" in inference:
            return "The model returned the following errors: temperature may only be set to 1 when thinking is enabled"
    last = messages[-1]
    if (
        last["role"] == "assistant"
        and "text" in last["content"][-1]
        and last["content"][-1]["text"] != last["content"][-1]["text"].rstrip()
    ):
        return "The model returned the following errors: final assistant content cannot end with trailing whitespace"
    fmt = (body.get("outputConfig") or {}).get("textFormat")
    if fmt is not None:
        try:
            json.loads(fmt["structure"]["jsonSchema"]["schema"])
        except (KeyError, TypeError, ValueError):
            return "outputConfig.textFormat.structure.jsonSchema.schema must be a JSON schema string"
    return None


class FakeBedrockUpstream(LoopbackUpstream):
    thread_name = "fake-bedrock-upstream"

    def __init__(
        self,
        access_key_id: str = ACCESS_KEY_ID,
        secret_access_key: str = SECRET_ACCESS_KEY,
        session_token: str | None = None,
        region: str = REGION,
        stall_s: float = 600.0,
    ) -> None:
        super().__init__(stall_s)
        self.credentials = Credentials(access_key_id, secret_access_key, session_token)
        self.region = region
        self.cache = sm.CacheMemory()
        self.signature_failures: list[str] = []

    @property
    def base_url(self) -> str:
        return self.root_url

    @property
    def env(self) -> dict[str, str]:
        """The AWS variables a gateway needs to sign for this fake."""
        env = {"AWS_ACCESS_KEY_ID": self.credentials.access_key, "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key}
        if self.credentials.token:
            env["AWS_SESSION_TOKEN"] = self.credentials.token
        return env

    def clear(self) -> None:
        super().clear()
        self.cache.clear()
        self.signature_failures.clear()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model_id}/converse", self._converse)
        app.router.add_post("/model/{model_id}/converse-stream", self._converse)

    def converse_requests(self) -> list[Any]:
        return [r for r in self.requests if r.path.startswith("/model/")]

    # --- SigV4 ---------------------------------------------------------------------------------------
    def signature_problem(self, request: web.Request, raw: bytes) -> tuple[str, str] | None:
        """(exception type, message) when the request is not signed right, else None."""
        match = _AUTH.fullmatch(request.headers.get("Authorization", ""))
        if match is None:
            return "MissingAuthenticationTokenException", "Missing Authentication Token"
        if match["key"] != self.credentials.access_key:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        if match["service"] != "bedrock" or match["region"] != self.region:
            return "InvalidSignatureException", "Credential should be scoped to a valid region and service 'bedrock'."
        if self.credentials.token and request.headers.get("X-Amz-Security-Token") != self.credentials.token:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        amz_date = request.headers.get("X-Amz-Date", "")
        try:
            signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        except ValueError:
            return "IncompleteSignatureException", "X-Amz-Date is missing or malformed"
        if abs((datetime.datetime.now(datetime.UTC) - signed_at).total_seconds()) > 300:
            return "InvalidSignatureException", "Signature expired"
        names = match["signed"].split(";")
        headers = {name: request.headers.get(name, "") for name in names if name != "host"}
        aws_request = AWSRequest(method=request.method, url=f"http://{request.host}{request.raw_path}", data=raw,
                                 headers=headers)  # fmt: skip
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(self.credentials, "bedrock", self.region)
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if expected != match["signature"]:
            self.signature_failures.append(canonical)
            return (
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None

    # --- the request -----------------------------------------------------------------------------------
    async def _converse(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        raw = self.requests[-1].raw
        if (problem := self.signature_problem(request, raw)) is not None:
            return error_response(403, *problem)
        model_id = request.match_info["model_id"]
        if not isinstance(body, dict):
            return error_response(400, message="Malformed input request, please reformat your input and try again.")
        if (problem := validate(body)) is not None:
            return error_response(400, message=problem)
        name = _VENDOR.sub("", model_id)
        if name.startswith(MODERN_CLAUDE) and (problem := _modern_claude_problem(body)) is not None:
            return error_response(400, message=problem)
        scenario = sm.parse_scenario(name.removeprefix(MODERN_CLAUDE))
        if scenario is None:
            return error_response(400, message="The provided model identifier is invalid.")
        kind, n = scenario
        if kind in sm.ERROR_SCENARIOS:
            return error_response(_SCENARIO_STATUS[sm.ERROR_SCENARIOS[kind]])
        if kind == "slow":
            await asyncio.sleep(n / 1000)
        ask, cache = self._ask(body, kind, n)
        reply = sm.answer(ask)
        response = self._response(ask, reply, cache)
        if request.path.endswith("/converse-stream"):
            return await self._stream(request, response, reply, kind, n)
        return await self._complete(request, response, kind)

    def _ask(self, body: dict[str, Any], kind: str, n: int) -> tuple[sm.Ask, tuple[int, int]]:
        texts: list[str] = []
        cached_upto = 0
        last_user = ""
        for block in body.get("system") or []:
            texts.append(block.get("text", ""))
            cached_upto = len(texts) if "cachePoint" in block else cached_upto
        for message in body["messages"]:
            plain = []
            for block in message["content"]:
                if "text" in block:
                    texts.append(block["text"])
                    plain.append(block["text"])
                elif "toolResult" in block:
                    texts.append(_text_of_result(block["toolResult"]))
                elif "cachePoint" in block:
                    cached_upto = len(texts)
            if message["role"] == "user" and plain:
                last_user = " ".join(plain)
        tool_config = body.get("toolConfig") or {}
        choice = tool_config.get("toolChoice") or {"auto": {}}
        extra = body.get("additionalModelRequestFields") or {}
        fmt = ((body.get("outputConfig") or {}).get("textFormat") or {}).get("structure", {}).get("jsonSchema")
        ask = sm.Ask(
            kind=kind,
            n=n,
            prompt_texts=[t for t in texts if t],
            last_user_text=last_user,
            tools=[
                (t["toolSpec"]["name"], t["toolSpec"]["inputSchema"]["json"]) for t in tool_config.get("tools") or []
            ],
            tool_choice="auto" if "auto" in choice else "required" if "any" in choice else choice["tool"]["name"],
            json_schema=json.loads(fmt["schema"]) if fmt else None,
            reasoning=(extra.get("thinking") or extra.get("reasoningConfig") or {}).get("type")
            in ("enabled", "adaptive"),
            max_tokens=(body.get("inferenceConfig") or {}).get("maxTokens"),
        )
        return ask, self.cache.use(texts[:cached_upto])

    def _response(self, ask: sm.Ask, reply: sm.Answer, cache: tuple[int, int]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.reasoning_pieces:
            signature = "sig" + hashlib.sha256(reply.reasoning.encode()).hexdigest()[:29]
            content.append({"reasoningContent": {"reasoningText": {"text": reply.reasoning, "signature": signature}}})
        if reply.text_pieces:
            content.append({"text": reply.text})
        for number, call in enumerate(reply.tool_calls):
            content.append({"toolUse": {"toolUseId": f"tooluse_fake{number:02d}", "name": call.name,
                                        "input": call.arguments}})  # fmt: skip
        read, written = cache
        usage = {"inputTokens": ask.prompt_tokens - read - written, "outputTokens": reply.completion_tokens,
                 "totalTokens": ask.prompt_tokens + reply.completion_tokens}  # fmt: skip
        if read or written:
            usage.update(cacheReadInputTokens=read, cacheWriteInputTokens=written)
        return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": _STOP[reply.finish],
                "usage": usage, "metrics": {"latencyMs": 12}}  # fmt: skip

    async def _complete(self, request: web.Request, response: dict[str, Any], kind: str) -> web.StreamResponse:
        data = json.dumps(response).encode()
        if kind in ("garbage", "malformed-after"):
            return web.Response(body=b"<html>502 Bad Gateway {oops", content_type="application/json")
        if kind == "overloaded-after":
            return error_response(503)
        if kind in ("stall-after", "cut-after"):
            return await self.half_body(request, data, kind, "application/json")
        return web.Response(body=data, content_type="application/json", headers={"x-amzn-RequestId": "fake-id"})

    async def _stream(
        self, request: web.Request, response: dict[str, Any], reply: sm.Answer, kind: str, n: int
    ) -> web.StreamResponse:
        headers = {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": "fake-id"}
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        if kind == "garbage":
            await resp.write(b"<html><body>502 Bad Gateway: this is not an event stream at all</body></html>")
            await resp.write_eof()
            return resp
        if kind == "overloaded-after":
            fault_frame = exception_frame("serviceUnavailableException", _ERRORS[503][1])
        else:  # a frame whose message CRC is wrong
            good = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})
            fault_frame = good[:-4] + struct.pack(">I", (zlib.crc32(good[:-4]) + 1) & 0xFFFFFFFF)
        fault = (kind, n) if kind in sm.FAULTS else None
        return await self.send_frames(request, resp, stream_frames(response, reply), fault, fault_frame)


def stream_frames(response: dict[str, Any], reply: sm.Answer) -> list[Frame]:
    """messageStart, per block [contentBlockStart (tool use)] deltas contentBlockStop, messageStop, metadata."""
    frames: list[Frame] = [(event("messageStart", {"role": "assistant"}), False)]
    for index, block in enumerate(response["output"]["message"]["content"]):
        at = {"contentBlockIndex": index}
        if "reasoningContent" in block:
            for piece in reply.reasoning_pieces:
                frames.append(
                    (event("contentBlockDelta", {**at, "delta": {"reasoningContent": {"text": piece}}}), True)
                )
            signature = block["reasoningContent"]["reasoningText"]["signature"]
            frames.append(
                (event("contentBlockDelta", {**at, "delta": {"reasoningContent": {"signature": signature}}}), False)
            )
        elif "text" in block:
            frames += [
                (event("contentBlockDelta", {**at, "delta": {"text": piece}}), True) for piece in reply.text_pieces
            ]
        else:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            frames.append((event("contentBlockStart", {**at, "start": start}), False))
            arguments = json.dumps(use["input"])
            for i in range(0, len(arguments), 8):
                delta = {"toolUse": {"input": arguments[i : i + 8]}}
                frames.append((event("contentBlockDelta", {**at, "delta": delta}), True))
        frames.append((event("contentBlockStop", at), False))
    frames.append((event("messageStop", {"stopReason": response["stopReason"]}), False))
    frames.append((event("metadata", {"usage": response["usage"], "metrics": response["metrics"]}), False))
    return frames

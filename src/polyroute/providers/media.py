"""Fetching remote images for dialects that only take inline bytes (Gemini, Bedrock).

An `image_url` part with an http(s) URL is downloaded and replaced by a data URL before encoding,
so the encoders stay pure. Only public addresses are fetched (a gateway must not be a way into the
operator's network, e.g. a cloud metadata service); redirects are followed by hand, each hop checked.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from polyroute.domain.errors import BadRequest
from polyroute.providers.chat_input import image_of
from polyroute.settings import Timeouts

MAX_IMAGE_BYTES = 20 * 1024 * 1024
_MAX_REDIRECTS = 3


def _remote_url(part: Any) -> str | None:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = image_of(part)
    return image.url if not image.is_inline and image.url.startswith(("http://", "https://")) else None


def has_remote_images(messages: list[dict[str, Any]]) -> bool:
    return any(_remote_url(part) for m in messages if isinstance(m.get("content"), list) for part in m["content"])


async def inline_remote_images(
    messages: list[dict[str, Any]],
    session: aiohttp.ClientSession,
    timeouts: Timeouts,
    *,
    allow_private: bool = False,
) -> list[dict[str, Any]]:
    """A copy of `messages` whose remote images are data URLs (the input is not changed)."""
    if not has_remote_images(messages):
        return messages
    result = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list) or not any(_remote_url(p) for p in content):
            result.append(message)
            continue
        parts = []
        for part in content:
            if (url := _remote_url(part)) is not None:
                data_url = await fetch_data_url(url, session, timeouts, allow_private=allow_private)
                old = part.get("image_url")
                part = {**part, "image_url": {**(old if isinstance(old, dict) else {}), "url": data_url}}
            parts.append(part)
        result.append({**message, "content": parts})
    return result


async def _check_public(url: str) -> None:
    host = urlsplit(url).hostname
    if not host:
        raise BadRequest("Invalid request: an image URL has no host")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise BadRequest(f"Could not fetch the image at {url}: its host does not resolve") from None
    for info in infos:
        if not ipaddress.ip_address(info[4][0]).is_global:
            raise BadRequest(f"Could not fetch the image at {url}: it is not on a public address")


async def fetch_data_url(
    url: str, session: aiohttp.ClientSession, timeouts: Timeouts, *, allow_private: bool = False
) -> str:
    """Download one image (at most MAX_IMAGE_BYTES) as `data:<type>;base64,...`."""
    try:
        async with asyncio.timeout(timeouts.first_byte_s):
            for _hop in range(_MAX_REDIRECTS + 1):
                if not allow_private:
                    await _check_public(url)
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    if response.status >= 400:
                        raise BadRequest(f"Could not fetch the image at {url}: HTTP {response.status}")
                    body = await response.content.read(MAX_IMAGE_BYTES + 1)
                    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
                    break
            else:
                raise BadRequest(f"Could not fetch the image at {url}: too many redirects")
    except TimeoutError:
        raise BadRequest(f"Could not fetch the image at {url}: it did not arrive in time") from None
    except aiohttp.ClientError as exc:
        raise BadRequest(f"Could not fetch the image at {url}: {type(exc).__name__}") from None
    if len(body) > MAX_IMAGE_BYTES:
        raise BadRequest(f"The image at {url} is larger than {MAX_IMAGE_BYTES} bytes")
    if not media_type.startswith("image/"):
        media_type = image_of({"image_url": url}).media_type or ""
    if not media_type:
        raise BadRequest(f"Could not fetch the image at {url}: it is not an image")
    return f"data:{media_type};base64,{base64.b64encode(body).decode('ascii')}"

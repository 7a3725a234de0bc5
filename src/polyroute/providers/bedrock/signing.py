"""AWS Signature Version 4 for Bedrock requests, with botocore's signer (never a hand-written one).

The signature covers the method, the percent-encoded path exactly as sent, the signed headers and
a hash of the exact body bytes, so the caller must send the URL, headers and body it signed.
"""

from __future__ import annotations

from collections.abc import Mapping

from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from polyroute.catalog.presets import split_bedrock_credentials
from polyroute.domain.secret import Secret

SERVICE = "bedrock"


def credentials_from(api_key: Secret) -> Credentials:
    """The catalog keeps AWS credentials as one Secret `"<key id>:<secret>[:<session token>]"`."""
    key_id, secret, token = split_bedrock_credentials(api_key)
    return Credentials(key_id, secret, token)


def sign(url: str, body: bytes, headers: Mapping[str, str], credentials: Credentials, region: str) -> dict[str, str]:
    """`headers` plus `X-Amz-Date`, `Authorization` (and `X-Amz-Security-Token` with a session token)."""
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}

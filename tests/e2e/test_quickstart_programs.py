"""OpenRouter's quickstart programs, run as written apart from URL and key (and the model alias
`~openai/gpt-latest`, which this test's config points at the fake upstream)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from tests.support.gateway import acme_config_toml

REQUESTS_PROGRAM = """
import requests
import json

response = requests.post(
  url="{base_url}/chat/completions",
  headers={{
    "Authorization": "Bearer {key}",
    "HTTP-Referer": "https://quickstart.example", # Optional. Site URL for rankings on openrouter.ai.
    "X-OpenRouter-Title": "Quickstart App", # Optional. Site title for rankings on openrouter.ai.
  }},
  data=json.dumps({{
    "model": "~openai/gpt-latest",
    "messages": [
      {{
        "role": "user",
        "content": "What is the meaning of life?"
      }}
    ]
  }})
)
print(response.json()["choices"][0]["message"]["content"])
"""

OPENAI_PROGRAM = """
from openai import OpenAI

client = OpenAI(
  base_url="{base_url}",
  api_key="{key}",
)

completion = client.chat.completions.create(
  extra_headers={{
    "HTTP-Referer": "https://sdk.example", # Optional. Site URL for rankings on openrouter.ai.
    "X-Title": "SDK App", # Optional. Site title for rankings on openrouter.ai.
  }},
  model="~openai/gpt-latest",
  messages=[
    {{
      "role": "user",
      "content": "What is the meaning of life?"
    }}
  ]
)

print(completion.choices[0].message.content)
"""


@pytest.fixture(scope="module")
def gateway_config(fake_upstream):
    return acme_config_toml(fake_upstream.base_url, extra_toml='[aliases]\n"~openai/gpt-latest" = "acme/mock-model"\n')


@pytest.mark.parametrize(
    ("program", "referer", "title"),
    [
        (REQUESTS_PROGRAM, "https://quickstart.example", "Quickstart App"),
        (OPENAI_PROGRAM, "https://sdk.example", "SDK App"),
    ],
)
def test_quickstart_program_prints_the_answer_and_is_attributed(gateway, api_key, program, referer, title):
    code = program.format(base_url=gateway.base_url, key=api_key)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Echo: What is the meaning of life?"
    row = _wait_for_generation(gateway, referer)
    assert row["app_title"] == title and row["model"] == "acme/mock-model" and row["status"] == "ok"


def _wait_for_generation(gateway, referer):
    for _ in range(50):
        rows = [r for r in gateway.generations() if r["http_referer"] == referer]
        if rows:
            return rows[-1]
        time.sleep(0.1)
    raise AssertionError(f"no generation recorded for {referer}")

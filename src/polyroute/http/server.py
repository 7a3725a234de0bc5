"""`polyroute serve`: run the app under uvicorn (uvloop + httptools), one or more workers."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import uvicorn

from polyroute.catalog.config import ConfigError
from polyroute.http.server_protocol import HttpProtocol
from polyroute.http.services import build_catalog
from polyroute.logging_setup import configure_logging, uvicorn_log_config
from polyroute.settings import Settings


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    configure_logging(settings.log_level)
    try:
        build_catalog(settings)  # fail fast, with file/key/reason, before binding the port
    except ConfigError as error:
        sys.exit(f"polyroute: configuration error: {error}")
    if settings.config_path is not None:
        # Worker processes rebuild Settings from the environment.
        os.environ["POLYROUTE_CONFIG"] = str(settings.config_path)
    os.environ.setdefault("POLYROUTE_DATA_DIR", str(settings.data_dir))
    metrics_dir = tempfile.mkdtemp(prefix="polyroute-metrics-") if workers > 1 else None
    if metrics_dir:  # each worker writes its metric samples here; /metrics adds them up (docs/operations.md)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    uvicorn.run(
        "polyroute.http.app:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        loop="uvloop",
        http=HttpProtocol,  # httptools, one write per response head + body (server_protocol.py)
        lifespan="on",
        access_log=False,
        log_config=uvicorn_log_config(settings.log_level),
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    if metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)

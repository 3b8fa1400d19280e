"""How roomchat runs under uvicorn, and the one place that knows uvicorn's internals:
its options (``options``), roomchat's HTTP and WebSocket protocol subclasses
(``http_protocol``; ``ws_protocol``, built from ``ws_reading``, ``ws_closing``,
``transport_sink`` and ``lean``), socket routing ahead of FastAPI (``routing``) and
start-up tuning (``tuning``). ``realtime`` sees only ``realtime.sink``."""

from __future__ import annotations

from roomchat.server.options import uvicorn_options

__all__ = ["uvicorn_options"]

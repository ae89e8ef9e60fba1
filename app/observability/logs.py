"""Log set-up: one JSON object per line (or plain text for a terminal), each carrying the id of the
request it happened under. Work a request starts in the background (provisioning, say) inherits the id,
since asyncio copies the context into the tasks it creates."""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any, Literal

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON object.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k != "request_id"})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _RequestIdText(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id_text = f" [{REQUEST_ID.get()}]" if REQUEST_ID.get() else ""
        return True


def configure_logging(fmt: Literal["json", "text"]) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_RequestIdText())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s%(request_id_text)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the tunnel proxy's client: one line per request
    for name in ("hypercorn.error", "hypercorn.access"):  # through the root handler, in the same format
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

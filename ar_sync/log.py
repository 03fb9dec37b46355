"""Logging: structlog to stderr; JSON lines off a terminal, key=value on one.

Every line about an invoice carries its ``key``. Secrets are registered at start and
masked in every line, whatever field or exception text they would have appeared in.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal

import structlog

_SECRETS: set[str] = set()
MASK = "***"


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that no log line can carry them."""
    _SECRETS.update(v for v in values if v and len(v) >= 4)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _mask_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _SECRETS:
        for k, v in list(event.items()):
            if isinstance(v, str):
                event[k] = mask(v)
            elif isinstance(v, BaseException):
                event[k] = mask(f"{type(v).__name__}: {v}")
    return event


def _mask_rendered(_: Any, __: str, rendered: Any) -> Any:
    return mask(rendered) if isinstance(rendered, str) and _SECRETS else rendered


def configure(level: str = "info", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    """Set up structlog once per process; logs go to stderr, never stdout."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (structlog.processors.JSONRenderer() if json_lines
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_processor,
            structlog.processors.format_exc_info,
            renderer,
            _mask_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str = "ar_sync") -> Any:
    return structlog.get_logger(name)

"""Logging: structlog to stderr; JSON lines off a terminal, key=value on one.

Every line about an invoice carries its ``key``. Secrets are registered at start and
masked in every line, whatever field or exception text they would have appeared in.
Other libraries' stdlib logging (APScheduler, HTTP clients) and an uncaught exception
come out the same way: one masked line each, JSON off a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from types import TracebackType
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
    numeric = logging.getLevelNamesMapping()[level.upper()]
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
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(renderer, numeric)
    sys.excepthook = _log_uncaught


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (as ``logging.lastResort``)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _route_stdlib_logging(renderer: Any, level: int) -> None:
    """Other libraries' stdlib logging (APScheduler's skipped runs, HTTP clients) takes the
    same road: one line on stderr, JSON off a terminal, secrets masked. Below warning they
    speak only at debug level."""
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_processor,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
            _mask_rendered,
        ]))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StderrHandler)]
    root.addHandler(handler)
    root.setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None,
                  ) -> None:
    """A crash is one more log line, masked like the others, not a bare traceback."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    structlog.get_logger("ar_sync").critical("crashed", exc_info=(kind, value, tb))


def get(name: str = "ar_sync") -> Any:
    return structlog.get_logger(name)

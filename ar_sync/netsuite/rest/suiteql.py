"""SuiteQL: the one formatter every value goes through, and keyset paging.

Why a formatter: the REST query service takes a bare ``{"q": "..."}`` — there are no bound
parameters over REST (reference, netsuite-rest.md §3; the two reference files disagree, so
we rely on neither). Every value that enters a query is therefore rendered here and only
here, by kind:

* ids — ASCII digits only, at most 18 of them (``int()`` would accept ``"١٢"`` and ``" 7"``);
* dates — ``datetime.date`` (not ``datetime``), as ``TO_DATE('YYYY-MM-DD', 'YYYY-MM-DD')``;
* enumerations — one of the values the query declares (status letters, record types);
* strings — single quotes doubled; control and invisible format characters, and
  look-alikes that fold to a quote, refused outright (SQL-92 has no backslash escapes).

Templates are constants of :mod:`.queries`; placeholders are ``{name}`` and each must be
filled with a :class:`Literal` made by one of the functions below, so a raw string can
never reach the query by accident.

Why keyset paging: SuiteQL returns at most 100,000 rows per query through ``offset``
paging (limit ≤ 1000, offset a multiple of the limit). Paging on ``key > last ORDER BY key``
with ``offset`` always 0 has no cap, and rows billed between two pages are neither
repeated nor skipped.
"""

from __future__ import annotations

import datetime as dt
import re
import string
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ar_sync.errors import FatalError

PAGE_LIMIT = 1000  # NetSuite's maximum page size (section_156414087576)
MAX_IN_LIST = 1000  # Oracle refuses IN lists longer than this (ORA-01795)
MAX_TEXT = 4000  # Oracle's longest string literal, in characters here (bytes there)
_ID = re.compile(r"[0-9]{1,18}")
_QUOTE_LIKE = frozenset("'\"`;")

Row = dict[str, Any]


class QueryValueError(ValueError):
    """A value that may not go into a SuiteQL query (a bug or hostile data: never sent)."""


@dataclass(frozen=True, slots=True)
class Literal:
    """A value already rendered as SuiteQL; only this module makes them."""

    sql: str


def sql_id(value: object) -> Literal:
    """An internal id: ASCII digits (an ``int`` or a string of digits), nothing else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise QueryValueError(f"an id must be an int or a string of digits, got {value!r}")
    text = str(value)
    if not _ID.fullmatch(text):
        raise QueryValueError(f"not an internal id: {value!r}")
    return Literal(str(int(text)))


def sql_ids(values: Iterable[object]) -> Literal:
    """A non-empty ``(1, 2, 3)`` list of ids for ``IN``; callers skip the query when empty."""
    rendered = sorted({int(sql_id(v).sql) for v in values})
    return Literal(f"({', '.join(map(str, _in_list(rendered)))})")


def sql_date(value: object) -> Literal:
    """A calendar date (never a datetime: its time and zone would be silently dropped)."""
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise QueryValueError(f"a date must be a datetime.date, got {value!r}")
    return Literal(f"TO_DATE('{value.isoformat()}', 'YYYY-MM-DD')")


def sql_enum(value: object, allowed: Collection[str]) -> Literal:
    """One of ``allowed`` (status letters, record types): anything else is refused."""
    if not isinstance(value, str) or value not in allowed:
        raise QueryValueError(f"{value!r} is not one of {sorted(allowed)}")
    return sql_text(value)


def sql_enums(values: Iterable[object], allowed: Collection[str]) -> Literal:
    """A non-empty ``('E', 'F')`` list of enumeration values."""
    rendered = sorted({sql_enum(v, allowed).sql for v in values})
    return Literal(f"({', '.join(_in_list(rendered))})")


def sql_text(value: object) -> Literal:
    """A string literal: quotes doubled; characters that could hide or fake SQL refused."""
    if not isinstance(value, str):
        raise QueryValueError(f"expected a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise QueryValueError(f"string of {len(value)} characters is too long for SuiteQL")
    for ch in value:
        _check_char(ch)
    return Literal("'" + value.replace("'", "''") + "'")


def sql_texts(values: Iterable[object]) -> Literal:
    """A non-empty ``('a', 'b')`` list of string literals."""
    rendered = sorted({sql_text(v).sql for v in values})
    return Literal(f"({', '.join(_in_list(rendered))})")


def _check_char(ch: str) -> None:
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
        raise QueryValueError(f"character U+{ord(ch):04X} ({category}) may not go into SuiteQL")
    if ord(ch) > 127 and _QUOTE_LIKE & set(unicodedata.normalize("NFKC", ch)):
        raise QueryValueError(f"character U+{ord(ch):04X} folds to a quote or semicolon")


def _in_list(items: Sequence[Any]) -> Sequence[Any]:
    if not items:
        raise QueryValueError("an IN list needs at least one value (skip the query instead)")
    if len(items) > MAX_IN_LIST:
        raise QueryValueError(f"an IN list takes at most {MAX_IN_LIST} values, got {len(items)}")
    return items


def render(template: str, **values: Literal) -> str:
    """Fill ``template``'s ``{name}`` placeholders; every one needs a :class:`Literal`."""
    names = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    if names != set(values):
        raise QueryValueError(f"placeholders {sorted(names)} do not match {sorted(values)}")
    for name, value in values.items():
        if not isinstance(value, Literal):
            raise QueryValueError(f"{name}: {value!r} was not rendered by the SuiteQL formatter")
    return template.format_map({name: value.sql for name, value in values.items()})


def chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """``values`` in slices that fit an IN list (and keep each query text small)."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


# -- keyset paging --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Key:
    """A paging key column: its SQL expression and the lower-case name it comes back as."""

    expr: str
    column: str


Fetch = Callable[[str, int], Mapping[str, Any]]  # (query, limit) -> one SuiteQL page


def keyset_rows(fetch: Fetch, template: str, keys: Sequence[Key],
                values: Mapping[str, Literal] | None = None,
                limit: int = PAGE_LIMIT, after: tuple[int, ...] | None = None) -> Iterator[Row]:
    """Every row of ``template`` (which holds ``{after}`` and ends ``ORDER BY`` the keys),
    one page per request, each page starting after the last key of the one before (the
    first after ``after`` when given)."""
    while True:
        query = render(template, after=after_key(keys, after), **(values or {}))
        page = fetch(query, limit)
        items: list[Row] = list(page.get("items") or [])
        yield from items
        if not page.get("hasMore"):
            return
        last = last_key(items, keys)
        if last is None or (after is not None and last <= after):
            raise FatalError("SuiteQL paging did not advance (hasMore with no new rows): "
                             "the query's ORDER BY must match its keys")
        after = last


def last_key(rows: Sequence[Row], keys: Sequence[Key]) -> tuple[int, ...] | None:
    """The paging key of the last of ``rows`` (None when there are none)."""
    return tuple(_key_value(rows[-1], k) for k in keys) if rows else None


def sort_key(keys: Sequence[Key]) -> Callable[[Row], tuple[int, ...]]:
    """Orders rows as the queries' ``ORDER BY`` on the keys does."""
    return lambda row: tuple(_key_value(row, k) for k in keys)


def after_key(keys: Sequence[Key], last: tuple[int, ...] | None) -> Literal:
    """``a > 5`` or ``(a > 5 OR (a = 5 AND b > 2))``; ``1 = 1`` on the first page."""
    if last is None:
        return Literal("1 = 1")
    if len(keys) == 1:
        return Literal(f"{keys[0].expr} > {sql_id(last[0]).sql}")
    first, rest = keys[0], keys[1:]
    inner = after_key(rest, last[1:]).sql
    value = sql_id(last[0]).sql
    return Literal(f"({first.expr} > {value} OR ({first.expr} = {value} AND {inner}))")


def _key_value(row: Row, key: Key) -> int:
    value = row.get(key.column)
    if value is None:
        return 0  # a NULL key sorts first (e.g. an invoice without lines): COALESCE'd to 0
    try:
        return int(sql_id(value).sql)
    except QueryValueError:
        raise FatalError(f"SuiteQL paging key {key.column}={value!r} is not an id") from None


Run = Callable[[list[Callable[[], list[Row]]]], list[list[Row]]]  # thunks, run concurrently


def in_list_rows(fetch: Fetch, run: Run, template: str, keys: Sequence[Key], name: str,
                 values: Sequence[Any], literal: Callable[[Iterable[Any]], Literal], *,
                 fixed: Mapping[str, Literal] | None = None, chunk: int = 500,
                 parallel: int = 2) -> list[Row]:
    """Every row of ``template`` for ``{name}`` = an IN list of ``values``, in key order, in as
    few round trips as keyset paging allows.

    Keyset pages of one query come one after the other, so each chunk of the IN list asks
    for its first page; when that says ``hasMore``, the rest (rows after its last key) is
    asked for disjoint groups of the chunk's values at once, sized by ``totalResults``.
    About as many requests as page after page, and two round trips instead of one per page.
    """
    fixed = dict(fixed or {})

    def one_chunk(part: Sequence[Any]) -> list[Row]:
        page = fetch(render(template, after=after_key(keys, None), **fixed,
                            **{name: literal(part)}), PAGE_LIMIT)
        rows: list[Row] = list(page.get("items") or [])
        if not page.get("hasMore"):
            return rows
        left = int(page.get("totalResults") or 0) - len(rows)
        groups = _split(part, min(parallel, max(2, -(-left // 900))) if left > 0 else parallel)
        after = last_key(rows, keys)
        rests = run([lambda g=g: list(keyset_rows(fetch, template, keys, fixed | {  # type: ignore[misc]
            name: literal(g)}, after=after)) for g in groups])
        return rows + sorted((r for rest in rests for r in rest), key=sort_key(keys))

    parts = run([lambda p=p: one_chunk(p) for p in chunks(values, chunk)])  # type: ignore[misc]
    rows = [r for part in parts for r in part]
    return sorted(rows, key=sort_key(keys)) if len(parts) > 1 else rows


def _split(values: Sequence[Any], n: int) -> list[Sequence[Any]]:
    """``values`` in ``n`` contiguous groups of nearly equal size (none empty)."""
    n = max(1, min(n, len(values)))
    size, extra = divmod(len(values), n)
    bounds = [i * size + min(i, extra) for i in range(n + 1)]
    return [values[bounds[i]:bounds[i + 1]] for i in range(n)]

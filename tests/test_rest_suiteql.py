"""The one SuiteQL formatter: ids, dates and enumerations validated, strings escaped, and what
cannot be made safe refused. Injection attempts go through the formatter, through SQLite
(whose string literals follow SQL-92 like SuiteQL's), and through the fake over HTTP."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from netsuite_rest_fake import FakeNetSuite, rest_gateway
from netsuite_rest_fake_data import translate
from test_gateway_contract import ANCHOR, all_units, make_draft

from ar_sync.errors import FatalError
from ar_sync.netsuite.rest.suiteql import (
    Key,
    Literal,
    QueryValueError,
    in_list_rows,
    keyset_rows,
    render,
    sql_date,
    sql_enum,
    sql_id,
    sql_ids,
    sql_text,
)
from ar_sync.netsuite.seed import build_demo_account

INJECTIONS = [
    "x' OR '1'='1",
    "so:1:2026-01-01'; DELETE FROM transaction; --",
    "' UNION SELECT id, externalid FROM transaction --",
    "abc'/* comment */'",
    "O'Brien & Söhne -- ; /* */",
    "'''",
    "\\' OR 1=1 --",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_strings_are_escaped_into_one_literal(text: str) -> None:
    literal = sql_text(text).sql
    assert literal == "'" + text.replace("'", "''") + "'"
    db = sqlite3.connect(":memory:")
    assert db.execute(f"SELECT {literal}").fetchone() == (text,)  # one value, nothing more


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn")),
               max_size=60))
def test_any_allowed_text_round_trips_as_one_literal(text: str) -> None:
    try:
        literal = sql_text(text)
    except QueryValueError:
        return  # refused (a quote look-alike): never sent
    db = sqlite3.connect(":memory:")
    assert db.execute(translate(f"SELECT {literal.sql} AS v")).fetchone() == (text,)


@pytest.mark.parametrize("text", [
    "nul\x00byte", "new\nline", "tab\there", "bidi\u202eoverride", "zero\u200bwidth",
    "fullwidth\uff07quote", "small\ufe52stop\ufe54semicolon\ufe54", "x" * 4001, 42, None,
])
def test_text_that_could_hide_sql_is_refused(text: object) -> None:
    with pytest.raises(QueryValueError):
        sql_text(text)


@pytest.mark.parametrize("value", [
    "12 ", " 12", "1e3", "-1", "0x1f", "١٢٣", "12;", "1 OR 1=1", "", True, 1.5, None,
    "1" * 19, [1],
])
def test_bad_ids_are_refused(value: object) -> None:
    with pytest.raises(QueryValueError):
        sql_id(value)


def test_ids_render_canonically() -> None:
    assert sql_id("0042").sql == "42" and sql_id(7).sql == "7"
    assert sql_ids(["3", 1, "2", 1]).sql == "(1, 2, 3)"
    with pytest.raises(QueryValueError):
        sql_ids([])
    with pytest.raises(QueryValueError):
        sql_ids(range(1001))


@pytest.mark.parametrize("value", ["2026-11-30", dt.datetime(2026, 11, 30, 12), 20261130, None])
def test_dates_must_be_dates(value: object) -> None:
    with pytest.raises(QueryValueError):
        sql_date(value)
    assert sql_date(dt.date(2026, 11, 30)).sql == "TO_DATE('2026-11-30', 'YYYY-MM-DD')"


@pytest.mark.parametrize("value", ["e", "EF", "E' OR 'A'='A", "", 5])
def test_enumerations_admit_only_their_values(value: object) -> None:
    with pytest.raises(QueryValueError):
        sql_enum(value, {"E", "F"})
    assert sql_enum("E", {"E", "F"}).sql == "'E'"


def test_render_takes_only_formatted_literals_for_every_placeholder() -> None:
    template = "SELECT id FROM transaction WHERE id IN {ids} AND {after}"
    with pytest.raises(QueryValueError):
        render(template, ids="(1)", after=Literal("1 = 1"))  # type: ignore[arg-type]
    with pytest.raises(QueryValueError):
        render(template, ids=sql_ids([1]))
    assert render(template, ids=sql_ids([2, 1]), after=Literal("1 = 1")).endswith(
        "IN (1, 2) AND 1 = 1")


def test_keyset_pages_start_after_the_last_key_and_stop_when_stuck() -> None:
    sent: list[str] = []
    pages = [{"items": [{"id": 1}, {"id": 2}], "hasMore": True},
             {"items": [{"id": 5}], "hasMore": False}]

    def fetch(query: str, limit: int) -> dict[str, object]:
        sent.append(query)
        return pages[len(sent) - 1]

    rows = list(keyset_rows(fetch, "SELECT id FROM t WHERE {after} ORDER BY id",
                            [Key("t.id", "id")]))
    assert [r["id"] for r in rows] == [1, 2, 5]
    assert sent[1].endswith("WHERE t.id > 2 ORDER BY id")
    stuck = [{"items": [{"id": 1}], "hasMore": True}] * 3
    with pytest.raises(FatalError, match="did not advance"):
        list(keyset_rows(lambda q, n: stuck.pop(), "SELECT {after}", [Key("t.id", "id")]))


def test_composite_keys_page_lines_without_gaps() -> None:
    sent: list[str] = []
    pages = [{"items": [{"t": 4, "l": 1}, {"t": 4, "l": 2}], "hasMore": True},
             {"items": [], "hasMore": False}]

    def fetch(query: str, limit: int) -> dict[str, object]:
        sent.append(query)
        return pages[len(sent) - 1]

    list(keyset_rows(fetch, "{after}", [Key("a.t", "t"), Key("a.l", "l")]))
    assert sent[1] == "(a.t > 4 OR (a.t = 4 AND a.l > 2))"


def test_injection_through_the_gateway_finds_nothing_and_breaks_nothing(tmp_path: Path) -> None:
    build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
    with FakeNetSuite(tmp_path / "netsuite.db") as fake, rest_gateway(fake) as gw:
        unit = all_units(gw, ANCHOR)[0]
        gw.create_invoices([make_draft(unit)])
        assert gw.find_invoices([*INJECTIONS, unit.key]).keys() == {unit.key}
        assert gw.find_invoices(INJECTIONS) == {}
        assert fake.stats.statuses[400] == 0  # every query reached NetSuite as one statement
        with pytest.raises(QueryValueError):
            gw.find_invoices(["so:1:2026-01-01\uff07 OR 1=1"])
        assert gw.read_invoices(["1 OR 1=1", "-1", "١"]) == {}  # not ids: not even asked
        assert gw.fetch_units(["so:1 OR 1=1:2026-01-01", "so:x:unreadable"], ANCHOR) == {}


def test_an_in_list_read_gets_every_row_in_order_in_two_round_trips() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER, line INTEGER, grp INTEGER)")
    rows = [(i, n, i % 37) for i in range(1, 2000) for n in range(1, 1 + i % 4)]  # 3000 rows
    db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    sent: list[str] = []
    rounds: list[int] = []

    def fetch(query: str, limit: int) -> dict[str, object]:
        sent.append(query)
        found = db.execute(query).fetchall()
        page = [{"id": i, "line": n} for i, n in found[:limit]]
        return {"items": page, "hasMore": len(found) > limit, "totalResults": len(found)}

    def run(thunks: list) -> list:  # type: ignore[type-arg]
        rounds.append(len(thunks))
        return [thunk() for thunk in thunks]

    template = "SELECT id, line FROM t WHERE grp IN {grps} AND {after} ORDER BY id, line"
    got = in_list_rows(fetch, run, template, [Key("id", "id"), Key("line", "line")], "grps",
                       list(range(37)), sql_ids, parallel=4)
    assert [(r["id"], r["line"]) for r in got] == sorted((i, n) for i, n, _ in rows)
    assert len(rows) > 1000 and len(sent) == 1 + 3  # first page, then the rest in 3 groups
    assert rounds == [1, 3]

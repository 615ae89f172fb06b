"""Ranked catalog search in the database: SQLite FTS5 or PostgreSQL full-text search.

PostgreSQL ranks every match with ts_rank over the stored `models.search_vector` (GIN).

SQLite: FTS5's bm25() counts every match of every word before it ranks anything, so one
common word ("assistant" in most descriptions) costs tens of milliseconds at 100,000
entries. Here FTS5 only proposes candidates, from bounded windows: per word, its newest
matches in names or tags and its newest matches anywhere (a word in more than `count_cap`
entries, next to rarer words, only gets a small name window), plus the newest entries
holding all the words. One SQL statement then scores the candidates: per word an IDF
weight (from a capped match count) times 3 for a name hit, 2 for a tag, 1 for the
description, times a bounded popularity factor (usage, rating). Words rarer than a window
are ranked exactly; for common words the windows keep the cost flat, at a price: an old
entry named with a word that hundreds of newer names share can miss the first page
(search two words, or filter). Searches filtered by owner or base rank every match of the
filtered set instead, since the filter is what keeps them small.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import text
from sqlmodel import Session

# 1.0 plus at most 0.25 for usage and +-0.25 for rating: relevance stays the main signal.
BOOST = ("(1.0 + 0.25 * m.usage_count / (m.usage_count + 20.0)"
         " + 0.25 * (m.rating_up - m.rating_down) / (m.rating_up + m.rating_down + 5.0))")
VISIBLE = ("(m.visibility = 'public' OR (m.visibility = 'workspace' AND m.workspace = :ws)"
           " OR m.owner = :user)")
# The same rule with indexes switched off (SQLite's unary +), so that listing walks the
# usage index in order and stops after `limit` rows instead of sorting every visible row.
VISIBLE_SCAN = ("(+m.visibility = 'public' OR (+m.visibility = 'workspace' AND +m.workspace = :ws)"
                " OR +m.owner = :user)")
POPULAR = "m.usage_count DESC, m.rating_up DESC, m.name"


@dataclass(frozen=True)
class SearchWindows:
    """Candidate windows (SQLite), shared among up to three words of a query. Tests shrink
    them so a small catalog behaves like a big one."""

    name: int = 300  # newest entries with the word in their name or tags
    any: int = 150  # newest entries with the word anywhere; and newest with all the words
    count_cap: int = 2000  # matches counted per word for its IDF weight


WINDOWS = SearchWindows()


@dataclass(frozen=True)
class Viewer:
    """Who a query is for: visibility depends on the workspace and the user."""

    workspace: str
    user: str


@dataclass(frozen=True)
class SearchFilters:
    task: Optional[str] = None  # a tag the entry must carry
    base: Optional[str] = None  # base model name of tuned entries
    owner: Optional[str] = None  # full owner id, or its last part ("alice", "U123")


def search_terms(words: str) -> list[str]:
    """The searchable tokens of free text (letters and digits), lowercased, deduplicated."""
    seen: list[str] = []
    for token in re.findall(r"[0-9a-z]+", words.lower()):
        if token not in seen:
            seen.append(token)
    return seen[:8]


def ranked_ids(session: Session, viewer: Viewer, words: str, filters: SearchFilters,
               limit: int, windows: SearchWindows = WINDOWS) -> list[tuple[int, Optional[float]]]:
    """(model id, score) of the best visible matches, best first; score None without words."""
    terms = search_terms(words)
    params: dict[str, Any] = {"ws": viewer.workspace, "user": viewer.user, "limit": int(limit)}
    where = _filters(filters, params)
    sqlite = session.get_bind().dialect.name == "sqlite"
    if not terms:
        visible = VISIBLE_SCAN if sqlite else VISIBLE
        sql = (f"SELECT m.id, NULL FROM models m WHERE {' AND '.join([visible] + where)}"
               f" ORDER BY {POPULAR} LIMIT :limit")
    elif not sqlite:
        params["q"] = " | ".join(terms)
        sql = (f"SELECT m.id, ts_rank(m.search_vector, q) * {BOOST} AS score"
               f" FROM models m, to_tsquery('english', :q) q WHERE m.search_vector @@ q"
               f" AND {' AND '.join([VISIBLE] + where)} ORDER BY score DESC, m.id LIMIT :limit")
    else:
        sql = _sqlite_sql(session, terms, filters, params, where, windows)
    rows = session.execute(text(sql), params).all()
    return [(row[0], None if row[1] is None else float(row[1])) for row in rows]


def _filters(filters: SearchFilters, params: dict[str, Any]) -> list[str]:
    where = []
    if filters.task:
        where.append("(' ' || m.tags || ' ') LIKE :task_like")
        params["task_like"] = f"% {filters.task.lower()} %"
    if filters.base:
        where.append("m.base_name = :base")
        params["base"] = filters.base.lower()
    if filters.owner:
        where.append("(m.owner = :owner OR m.owner LIKE :owner_tail)")
        params["owner"] = filters.owner
        params["owner_tail"] = f"%:{filters.owner}"
    return where


def _sqlite_sql(session: Session, terms: list[str], filters: SearchFilters,
                params: dict[str, Any], where: list[str], windows: SearchWindows) -> str:
    task = f' AND tags : "{_fts_safe(filters.task)}"' if filters.task else ""
    counts = _match_counts(session, terms, task, windows.count_cap)
    total = max(1, counts.pop())
    score_parts = []
    for i, term in enumerate(terms):
        weight = math.log(1.0 + total / (1.0 + counts[i]))
        stem = _stem(term)
        params.update({f"w{i}": weight, f"n{i}": f"-{stem}", f"g{i}": f" {stem}",
                       f"qn{i}": f'{{name tags}} : "{term}"{task}', f"qa{i}": f'"{term}"{task}'})
        score_parts.append(f":w{i} * (3 * (instr(n, :n{i}) > 0) + 2 * (instr(g, :g{i}) > 0)"
                           f" + (instr(d, :g{i}) > 0))")
    ranked = (f" SELECT id, ({' + '.join(score_parts)}) * boost AS score FROM docs"
              f" ORDER BY score DESC, id LIMIT :limit")
    if filters.owner or filters.base:  # small filtered sets: rank every match
        params["q"] = " OR ".join(f'"{t}"' for t in terms) + task
        match = "m.id IN (SELECT rowid FROM models_fts WHERE models_fts MATCH :q)"
        return "WITH " + _docs("models m", [match, VISIBLE] + where) + ranked
    window = "SELECT rowid FROM models_fts WHERE models_fts MATCH :{p} ORDER BY rowid DESC LIMIT {n}"
    sources = []
    rare = [i for i in range(len(terms)) if counts[i] < windows.count_cap]
    share = min(len(terms), 3)
    for i, term in enumerate(terms):
        if rare and i not in rare:  # a very common word beside rarer ones: a token window
            sources.append(window.format(p=f"qn{i}", n=max(1, windows.name // 6)))
            continue
        sources += [window.format(p=f"qn{i}", n=windows.name // share),
                    window.format(p=f"qa{i}", n=windows.any // share)]
    if len(terms) > 1:
        params["qall"] = " AND ".join(f'"{t}"' for t in terms) + task
        sources.append(window.format(p="qall", n=windows.any))
    union = " UNION ".join(f"SELECT * FROM ({s})" for s in sources)
    docs = _docs("candidates c JOIN models m ON m.id = c.id", [VISIBLE] + where)
    return f"WITH candidates(id) AS ({union}), {docs}{ranked}"


def _docs(source: str, where: list[str]) -> str:
    """The candidates' texts, prepared once (MATERIALIZED) for the per-word checks."""
    return ("docs AS MATERIALIZED (SELECT m.id AS id, '-' || m.name AS n, ' ' || m.tags AS g,"
            f" ' ' || lower(m.description) AS d, {BOOST} AS boost FROM {source}"
            f" WHERE {' AND '.join(where)})")


def _match_counts(session: Session, terms: list[str], task: str, cap: int) -> list[int]:
    """Per word its matches, counted up to a cap; then the highest model id (a cheap
    stand-in for the catalog's size)."""
    params: dict[str, Any] = {}
    parts = []
    for i, term in enumerate(terms):
        params[f"c{i}"] = f'"{term}"{task}'
        parts.append(f"(SELECT count(*) FROM (SELECT rowid FROM models_fts"
                     f" WHERE models_fts MATCH :c{i} LIMIT {cap}))")
    parts.append("(SELECT coalesce(max(id), 0) FROM models)")
    return list(session.execute(text("SELECT " + ", ".join(parts)), params).one())


def _fts_safe(word: Optional[str]) -> str:
    return re.sub(r"[^0-9a-z_-]", "", (word or "").lower())


def _stem(term: str) -> str:
    """A crude stem for the field checks (FTS5's porter stemmer already found the matches):
    'refunds' -> 'refund', 'shipping' -> 'shipp'."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if term.endswith(suffix) and len(term) - len(suffix) >= 3 and not term.endswith("ss"):
            return term[: -len(suffix)]
    return term

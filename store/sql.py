"""SQLAlchemy builds each statement once; asyncpg runs its SQL.

Statements are written in SQLAlchemy Core against the models, so a renamed column
fails at import, not in production. Running them through SQLAlchemy's execution
layer, though, cost more Python per query than the query itself (at 16 concurrent
reads: 2,700 queries/s through it against 7,200/s on the same asyncpg pool direct;
``bench/README.md``). So each statement is compiled once, to asyncpg's ``$n``
placeholders, and a ``Query`` maps named parameters to positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_DIALECT = asyncpg_dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Query:
    """A compiled statement: its SQL, and the order of its named parameters."""

    sql: str
    names: tuple[str, ...]
    #: Values fixed when the statement was built (``literal``), by name.
    fixed: Mapping[str, Any]
    #: Whether running it twice is harmless: a read may be retried on a new connection.
    idempotent: bool

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments; a missing parameter is a KeyError naming it."""
        return [params[name] if name in params else self.fixed[name] for name in self.names]


def compile_query(statement: ClauseElement, *, idempotent: bool) -> Query:
    """Compile ``statement`` for asyncpg. Do it at import time or behind a cache."""
    compiled = statement.compile(dialect=_DIALECT)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    fixed = {name: compiled.params[name] for name in names if not compiled.binds[name].required}
    return Query(compiled.string, names, fixed, idempotent)

"""The Spark SQL of a model, generated from its one DuckDB-dialect source in sql/ (never a second copy).

sqlglot parses each file as DuckDB SQL and writes it as Spark SQL. Three DuckDB-only things are handled here:
- the macros of sql/macros.sql are expanded in place (their bodies parsed from the same file), so Spark needs no
  functions registered and the two engines evaluate the very same expressions;
- `try_strptime(x, '%Y-%m-%d')` becomes `try_to_timestamp(x, 'y-M-d')` (the strftime pattern translated);
- the macro `trim_whitespace(x)` (Python's str.strip: spaces, tabs, line breaks, Unicode spaces) becomes a
  `regexp_replace` of the same characters at either end (Spark's trim removes only ' ').
Parameters (`$today`) become Spark named parameter markers (`:today`), bound by `spark.sql(text, args=...)`.
"""
from __future__ import annotations

import functools
import re

from .paths import SQL_DIR

_MACRO = re.compile(r"create\s+or\s+replace\s+macro\s+(\w+)\s*\(([^)]*)\)\s+as\s+(.*)", re.IGNORECASE | re.DOTALL)

# strftime (DuckDB) -> Java DateTimeFormatter (Spark) for the directives a date pattern uses
_STRFTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%b": "MMM",
             "%B": "MMMM", "%j": "DDD", "%%": "%",
             "%f": "SSSSSS"}  # Spark parses 1 to 6 fraction digits for SSSSSS, as DuckDB's %f does
# DuckDB's strptime reads these numeric fields with or without leading zeros (1980-1-5, 5/1/1980 as %d/%m/%Y); Spark's
# `MM` demands two digits but `M` takes one or two, so a field set off by separators gets the one-letter form.
# Fields that touch (%Y%m%d) keep their fixed widths: Java splits adjacent numbers by width.
_UNPADDED = {"%Y": "y", "%m": "M", "%d": "d", "%H": "H", "%M": "m", "%S": "s"}


def strftime_to_java(pattern: str, padded: bool = False) -> str:
    """Translate a strftime date pattern (`%d/%m/%Y`) to Spark's datetime pattern (`d/M/y`), reading what DuckDB's
    strptime reads: numeric fields between separators with or without their leading zeros (`padded`: every field
    at its fixed width, `dd/MM/yyyy`, for writing a date as DuckDB's strftime writes it)."""
    out, i = [], 0
    while i < len(pattern):
        two = pattern[i:i + 2]
        if two == "%y":  # Spark's `yy` reads 80 as 2080 (century 2000 always); DuckDB's %y as 1980 (69-99: 1900s)
            raise ValueError("date pattern directive %y (a two-digit year) is not supported on Spark: Spark reads 80 "
                             "as 2080 where DuckDB reads 1980; export four-digit years (%Y) or run on DuckDB")
        if two in _STRFTIME:
            touches = (i > 0 and pattern[i - 1:i + 1] != "%%" and pattern[i - 2:i - 1] == "%"
                       or pattern[i + 2:i + 3] == "%" and pattern[i + 2:i + 4] != "%%")
            out.append(_STRFTIME[two] if padded or touches or two not in _UNPADDED else _UNPADDED[two])
            i += 2
            continue
        if two.startswith("%"):
            raise ValueError(f"date pattern directive {two} is not supported on Spark")
        ch = pattern[i]
        out.append(f"'{ch}'" if ch.isalpha() else ("''" if ch == "'" else ch))
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1)
def macros() -> dict:
    """name -> (parameter names, body expression) for every macro in sql/macros.sql."""
    import sqlglot

    found = {}
    text = "\n".join(line for line in (SQL_DIR / "macros.sql").read_text().splitlines() if not line.lstrip().startswith("--"))
    for stmt in text.split(";"):
        m = _MACRO.match(stmt.strip())
        if m:
            params = [p.strip() for p in m.group(2).split(",") if p.strip()]
            if m.group(1).lower() not in SPARK_NATIVE:
                found[m.group(1).lower()] = (params, sqlglot.parse_one(m.group(3), read="duckdb"))
    return found


def _expand(node):
    """Replace macro calls by their bodies (arguments substituted), repeatedly, so macros may call macros."""
    from sqlglot import exp

    defs = macros()
    for _ in range(20):
        calls = [n for n in node.find_all(exp.Anonymous) if str(n.this).lower() in defs]
        if not calls:
            return node
        for call in calls:
            params, body = defs[str(call.this).lower()]
            new = body.copy().transform(_substitute(dict(zip(params, call.expressions))))
            replaced = call.replace(exp.Paren(this=new))
            if call is node:
                node = replaced
    raise RuntimeError("macros nest too deeply (a macro calls itself?)")


def _substitute(args: dict):
    from sqlglot import exp

    def sub(n):
        return args[n.name].copy() if isinstance(n, exp.Column) and not n.table and n.name in args else n

    return sub


# the characters Python's str.isspace() accepts, as a Java character class: \s is [ \t\n\x0B\f\r], \p{Zs} the
# Unicode space separators (' ', no-break space, U+1680, U+2000-U+200A, U+202F, U+205F, U+3000)
WHITESPACE = r"[\s\x1C-\x1F\x85\p{Zs}\u2028\u2029]"
WHITESPACE_AT_EDGES = f"^{WHITESPACE}+|{WHITESPACE}+\\z"  # \z: the very end (Java's $ also matches before a final newline)
SPARK_NATIVE = {"trim_whitespace"}  # macros the dialect writes itself instead of expanding their DuckDB bodies


def _spark_functions(node):
    from sqlglot import exp

    def trim_whitespace(n):
        if isinstance(n, exp.Anonymous) and str(n.this).lower() == "trim_whitespace":
            return exp.Anonymous(this="regexp_replace", expressions=[
                n.expressions[0], exp.Literal.string(WHITESPACE_AT_EDGES), exp.Literal.string("")])
        return n

    def fix(n):
        if isinstance(n, exp.Anonymous) and str(n.this).lower() == "try_strptime":
            value, fmt = n.expressions
            if isinstance(fmt, exp.Literal):
                fmt = exp.Literal.string(strftime_to_java(fmt.this))
            else:  # e.g. $date_format || ' %H:%M:%S': the bound pattern is translated by the caller, the literal here
                fmt = fmt.transform(lambda x: exp.Literal.string(strftime_to_java(x.this))
                                    if isinstance(x, exp.Literal) and x.is_string else x)
            return exp.Anonymous(this="try_to_timestamp", expressions=[value, fmt])
        return n

    return node.transform(trim_whitespace).transform(fix)  # two passes: try_strptime's argument holds a trim


def to_spark(sql: str) -> str:
    """One DuckDB SELECT (as in a model file) -> Spark SQL."""
    import sqlglot

    tree = sqlglot.parse_one(sql, read="duckdb")
    tree = _spark_functions(_expand(tree))
    return tree.sql(dialect="spark")


@functools.lru_cache(maxsize=64)
def spark_model(model: str) -> str:
    """The Spark SQL of sql/<model>.sql."""
    return to_spark((SQL_DIR / f"{model}.sql").read_text())

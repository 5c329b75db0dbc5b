"""Generated parts of docs/: written from the declarations in the code so that they cannot drift.

    python -m pipeline.docs          rewrite every generated section in docs/ (make docs)
    python -m pipeline.docs --check  exit 1 when a section is stale (the tests do this)

A generated section sits between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`; the text
around it is written by hand. Sections: input-contract (pipeline/schema.py SOURCES), output-tables
(schema.OUTPUT_TABLES), input-options (config.INPUT_KEYS), public-inputs and public-vintages
(pipeline/public_inputs.py).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .paths import REPO_ROOT

DOCS_DIR = REPO_ROOT / "docs"
_SECTION = re.compile(r"(<!-- BEGIN GENERATED: ([a-z-]+) -->\n)(.*?)(<!-- END GENERATED: \2 -->)", re.S)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def input_contract() -> str:
    from .schema import SOURCES

    out = []
    for s in SOURCES:
        kind = "optional file" if s.optional_file else "required file"
        key = f"; `{s.key}` is unique" if s.key else ""
        out += [f"### `{s.stem}` ({kind}; one row per {s.one_row_per}{key})", "",
                "| column | required | meaning |", "| --- | --- | --- |"]
        for c in s.columns + s.optional_columns:
            req = "no (optional column)" if c in s.optional_columns else "yes"
            date = " Read with `[input] date_format`." if c in s.date_columns else ""
            out.append(f"| `{c}` | {req} | {_cell(s.description.get(c, ''))}.{date} |")
        out.append("")
    return "\n".join(out)


def output_tables() -> str:
    from .schema import OUTPUT_TABLES

    out = []
    for t in OUTPUT_TABLES:
        key = f" Key: {', '.join(f'`{c}`' for c in t.key)}." if t.key else ""
        out += [f"### `{t.name}`", "", f"One row per {t.one_row_per}.{key}", "", "| column | meaning |", "| --- | --- |"]
        out += [f"| `{c}` | {_cell(m)} |" for c, m in t.columns]
        out += [f"| `{c}` | {_cell(m)} ({t.note}) |" for c, m in t.optional]
        if t.open_ended:
            out.append("| … | then every column of the rejected row, as text, as it was in the file |")
        out.append("")
    return "\n".join(out)


def input_options() -> str:
    from .config import INPUT_KEYS

    out = ["| key | default | meaning |", "| --- | --- | --- |"]
    out += [f"| `{k}` | {_cell(d)} | {_cell(m)} |" for k, d, m in INPUT_KEYS]
    return "\n".join(out) + "\n"


def public_inputs() -> str:
    from .public_inputs import PUBLIC_INPUTS

    words = {"yy": "YYZZ", "year": "the QOF year", "start": "YYYY", "end": "the year end"}
    out = ["| input | file name (also as a zip member) | required | publisher | publication | comes in |",
           "| --- | --- | --- | --- | --- | --- |"]
    for p in PUBLIC_INPUTS:
        names = " or ".join(f"`{p.folder}/{n.format(**words)}`" for n in p.names)
        out.append(f"| {p.what} | {names} | {'yes' if p.required else 'no'} | {_cell(p.publisher)} | "
                   f"[{_cell(p.publication.format(**words))}]({p.url}) | {_cell(p.archive.format(**words))} |")
    return "\n".join(out) + "\n"


def public_vintages(years: tuple[str, ...] = ("2022-23", "2023-24", "2024-25", "2025-26")) -> str:
    from .public_inputs import PUBLIC_INPUTS, _year_words

    out = ["| input | " + " | ".join(f"QOF {y}" for y in years) + " |", "| --- |" + " --- |" * len(years)]
    for p in PUBLIC_INPUTS:
        cells = []
        for y in years:
            w = _year_words(y)
            names = ", ".join(n.format(**w) for n in p.names[:1])
            cells.append(_cell(f"{names}: {p.vintage.format(**w)}"))
        out.append(f"| {p.what} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


SECTIONS = {"input-contract": input_contract, "output-tables": output_tables, "input-options": input_options,
            "public-inputs": public_inputs, "public-vintages": public_vintages}


def _render(text: str) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(2)
        if name not in SECTIONS:
            raise KeyError(f"unknown generated section {name}")
        body = SECTIONS[name]().rstrip("\n") + "\n"
        return m.group(1) + body + m.group(4)

    return _SECTION.sub(sub, text)


def stale(docs_dir: Path = DOCS_DIR) -> list[str]:
    """The docs files whose generated sections differ from what the code declares now."""
    return [p.name for p in sorted(docs_dir.glob("*.md")) if _render(p.read_text(encoding="utf-8")) != p.read_text(encoding="utf-8")]


def update(docs_dir: Path = DOCS_DIR) -> list[str]:
    changed = []
    for p in sorted(docs_dir.glob("*.md")):
        old = p.read_text(encoding="utf-8")
        new = _render(old)
        if new != old:
            p.write_text(new, encoding="utf-8")
            changed.append(p.name)
    return changed


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        bad = stale()
        if bad:
            print("stale generated sections in docs/: " + ", ".join(bad) + " (run: python -m pipeline.docs)")
            sys.exit(1)
        sys.exit(0)
    print("updated: " + (", ".join(update()) or "nothing"))

"""An independent scanner of everything published under reports/ for disclosure-control breaches.

    scan_reports(reports_dir, threshold=7, rounding=5, method="round") -> ScanResult

It reads only the published files (never the warehouse) and knows nothing of pipeline.disclosure, so it can
catch mistakes there. What counts as a breach (DESIGN.md, "Disclosure control" and "Output contract"):

CSV files (csv module):
* a published count (`observed`, `population`, `missing`) that is 1..threshold, or not on the rounding grid
  (method "round": a multiple of `rounding`; "midpoint6": 3 mod 6), or that is neither a number nor the marker;
* `expected` (a model value, not a count, but the packs round it like one) off the rounding grid; it may be
  small (expected 5 says nothing about any patient);
* a row whose `observed` is hidden but whose rate, ratio, their limits or `missing` are shown (observed would
  follow from ratio x expected, rate x population or expected - missing); likewise a hidden `population`
  with a shown rate;
* the same cell published with different values in two files (the difference could be taken);
* a sibling set with exactly one hidden cell, counting the total: the groups of one breakdown of an area
  (rows sharing period, condition, area and group_type) with the area's `all` row as total; the practices in
  pcn/<P>.csv with PCN P's row as total; the PCNs in ics/<I>.csv with ICB I's row as total. One hidden member
  and a shown total give it back by subtraction (within the rounding), one hidden total by addition.
  Neighbourhoods are not a partition of anything published (people with no neighbourhood), so are not checked.

PDF files (pypdf; page text, image alt text from the structure tree, metadata):
* table rows under the packs' known headers (Registered, Recorded, Expected, Missing / Expected − recorded, Rows read/loaded/
  rejected, and data-quality shares): count cells as above, shares turned back into counts (share x
  registered) must not be certainly 1..threshold, and a hidden Recorded must hide rate, ratio and missing;
  a data-quality table of one area followed by the table of its parts (PCN and practices, ICB and PCNs)
  must not have exactly one hidden cell in a column;
* sentences "about N fewer/more", "N patients/people/recorded/…": N is a published count;
* every other standalone integer 1..threshold is collected in `unexplained` (with its context) unless it is in
  a known harmless context (dates, page numbers, axis ticks, age bands, quintile labels, the policy text,
  numbers of groups/areas). These are not counted as problems; tests print them for review.
Text files (README.txt): only the `unexplained` collection.
"""
from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "[c]"
COUNT_COLUMNS = ("observed", "population", "missing")
# counts protected by secondary suppression; `missing` is derived (published expected - published recorded), so it
# is checked against those instead: hiding it protects nothing and showing it reveals nothing
SIBLING_COLUMNS = ("observed", "population")
DEPENDENT_ON_OBSERVED = ("rate", "rate_lower", "rate_upper", "ratio", "ratio_lower", "ratio_upper", "missing")
DEPENDENT_ON_POPULATION = ("rate", "rate_lower", "rate_upper")
KEY = ("period", "condition", "area_type", "area_code", "group_type", "group_value")
BREAKDOWNS = ("ethnicity", "imd_quintile", "sex", "age_band")


@dataclass
class ScanResult:
    files: int = 0
    csv_files: int = 0
    pdf_files: int = 0
    text_files: int = 0
    cells: int = 0            # CSV cells read
    count_cells: int = 0      # count cells checked (CSV and PDF tables)
    numbers: int = 0          # numbers seen in PDF/text (every numeric token)
    pdf_count_numbers: int = 0  # of which in a count context (table count cells, sentences)
    sibling_sets: int = 0     # sibling sets checked (per count column)
    table_rows: int = 0       # PDF table rows parsed
    problems: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)

    def __iadd__(self, other: ScanResult) -> ScanResult:
        for f in ("files", "csv_files", "pdf_files", "text_files", "cells", "count_cells", "numbers",
                  "pdf_count_numbers", "sibling_sets", "table_rows"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.problems += other.problems
        self.unexplained += other.unexplained
        return self

    def summary(self) -> str:
        return (f"{self.files} files ({self.csv_files} CSV, {self.pdf_files} PDF, {self.text_files} text), "
                f"{self.cells} CSV cells, {self.count_cells} count cells, {self.sibling_sets} sibling sets, "
                f"{self.table_rows} PDF table rows, {self.numbers} numbers in PDF/text "
                f"({self.pdf_count_numbers} in count contexts), {len(self.problems)} problems, "
                f"{len(self.unexplained)} unexplained small numbers")


# ---------------------------------------------------------------------------------------------- count rules

def _num(s: str) -> float | None:
    try:
        return float(str(s).replace(",", ""))
    except (TypeError, ValueError):
        return None


def on_grid(x: float, rounding: int = 5, method: str = "round") -> bool:
    a = abs(x)
    if a != math.floor(a):
        return False
    if a == 0:
        return True
    if method == "midpoint6":
        return a % 6 == 3
    return rounding <= 1 or a % rounding == 0


def _rounded(x: float, rounding: int, method: str) -> float:
    """A whole count rounded as the policy publishes it, keeping its sign (midpoint6: 1-6 -> 3, 7-12 -> 9)."""
    a = abs(x)
    out = math.ceil(a / 6) * 6 - 3 if method == "midpoint6" and a else (math.floor(a / rounding + 0.5) * rounding
                                                                        if method != "midpoint6" else 0)
    return math.copysign(out, x) if out else 0.0


def count_problem(x: float, threshold: int, rounding: int, method: str) -> str | None:
    """Why a published count breaks the policy, or None."""
    a = abs(x)
    if 0 < a <= threshold + 0.5 - 1e-9 or (0 < a < 1):
        return f"small count {x:g} (1..{threshold} must be hidden)"
    if not on_grid(x, rounding, method):
        return f"count {x:g} not rounded ({method}, base {rounding})"
    return None


# ---------------------------------------------------------------------------------------------- CSV

def _scan_csv(path: Path, rel: str, res: ScanResult, thr: int, rnd: int, method: str, cells: dict) -> None:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    folder = path.parent.name
    for i, row in enumerate(rows, start=2):
        res.cells += len(row)
        where = f"{rel} line {i}"
        red = {}
        for c in COUNT_COLUMNS:
            if c not in row:
                continue
            v = (row[c] or "").strip()
            res.count_cells += 1
            if v == MARKER:
                red[c] = True
                continue
            red[c] = False
            if v == "":
                res.problems.append(f"{where}: `{c}` is empty (a count is a number or {MARKER})")
                continue
            x = _num(v)
            if x is None:
                res.problems.append(f"{where}: `{c}` = {v!r} is neither a number nor {MARKER}")
                continue
            p = count_problem(x, thr, rnd, method)
            if p:
                res.problems.append(f"{where}: `{c}` {p}")
        if "expected" in row:
            x = _num(row["expected"])
            if x is not None and not on_grid(x, rnd, method):
                res.problems.append(f"{where}: `expected` {x:g} not rounded like a count")
            o, m = _num(row.get("observed")), _num(row.get("missing"))
            # published expected - published observed, rounded like a count (a change under midpoint6 only)
            if x is not None and o is not None and m is not None and abs(m - _rounded(x - o, rnd, method)) > 1e-9:
                res.problems.append(f"{where}: `missing` {m:g} is not published expected - published observed")
            if red.get("observed") and x is not None:
                res.problems.append(f"{where}: `observed` hidden but `expected` shown")
        def shown(c, row=row):
            return c in row and (row[c] or "").strip() not in ("", MARKER)

        if red.get("observed"):
            leaked = [c for c in DEPENDENT_ON_OBSERVED if shown(c)]
            if leaked:
                res.problems.append(f"{where}: `observed` hidden but {leaked} shown")
        if red.get("population"):
            leaked = [c for c in DEPENDENT_ON_POPULATION if shown(c)]
            if leaked:
                res.problems.append(f"{where}: `population` hidden but {leaked} shown")
        if all(k in row for k in KEY) and folder == "community":
            # the stricter community publication may hide more, never show what the packs hide or differ
            cells.setdefault("__community__", []).append(
                (tuple(row[k] for k in KEY), tuple((row.get(c) or "").strip() for c in COUNT_COLUMNS), rel))
        elif all(k in row for k in KEY):
            key = tuple(row[k] for k in KEY)
            vals = tuple((row.get(c) or "").strip() for c in COUNT_COLUMNS)
            prev = cells.get(key)
            if prev is not None and prev[0] != vals:
                res.problems.append(f"{where}: cell {key} published as {vals} here and {prev[0]} in {prev[1]}")
            if prev is None:
                cells[key] = (vals, rel, folder, path.stem)
            # membership in hierarchies, by the file the row is in
            if folder == "pcn" and row["area_type"] == "practice":
                cells.setdefault(("__parent__",) + key, ("pcn", path.stem))
            if folder == "ics" and row["area_type"] == "pcn":
                cells.setdefault(("__parent__",) + key, ("icb", path.stem))


def _sibling_check(cells: dict, res: ScanResult) -> None:
    data = {k: v for k, v in cells.items() if k[0] != "__parent__"}
    parents = {k[1:]: v for k, v in cells.items() if k[0] == "__parent__"}
    sets: dict = defaultdict(lambda: dict(members=[], total=None))
    for key, (vals, _rel, _, _) in data.items():
        period, cond, at, ac, gt, gv = key
        if gt in BREAKDOWNS:
            sets[("breakdown", period, cond, at, ac, gt)]["members"].append((key, vals))
        elif gt == "all":
            sets[("breakdown", period, cond, at, ac, "*")]  # placeholder, totals attached below
        if key in parents:
            ptype, pcode = parents[key]
            sets[("hierarchy", period, cond, ptype, pcode, gt, gv)]["members"].append((key, vals))
    for sk, s in sets.items():
        if sk[0] == "breakdown":
            _, period, cond, at, ac, gt = sk
            t = data.get((period, cond, at, ac, "all", "All"))
        else:
            _, period, cond, ptype, pcode, gt, gv = sk
            t = data.get((period, cond, ptype, pcode, gt, gv))
        s["total"] = t[0] if t else None
    for sk, s in sets.items():
        if not s["members"] or s["total"] is None:
            continue
        for j, c in enumerate(COUNT_COLUMNS):
            if c not in SIBLING_COLUMNS:
                continue
            res.sibling_sets += 1
            hidden = [k for k, v in s["members"] if v[j] == MARKER]
            total_hidden = s["total"][j] == MARKER
            if len(hidden) + total_hidden == 1:
                what = (f"the only hidden member {hidden[0][4]}={hidden[0][5]} of {hidden[0][2]} {hidden[0][3]}"
                        if hidden else "the hidden total (all members shown)")
                res.problems.append(f"sibling set {sk[:-1] if sk[0] == 'breakdown' else sk}: `{c}`: {what} "
                                    f"can be recovered by {'subtraction' if hidden else 'addition'}")


# ---------------------------------------------------------------------------------------------- PDF

_COUNT = r"(?:\[c\]|–|-?\d{1,3}(?:,\d{3})*)"
_SHARE = r"(?:\[c\]|–|-?\d+(?:\.\d+)?%)"
_RATE = _SHARE
_RATIO = r"(?:\[c\]|–|-?\d+\.\d\d(?: \(-?\d+\.\d\d–-?\d+\.\d\d\))?)"
_OVERALL = r"(?:fewer than expected|more than expected|similar to expected|fewer than average|more than average|similar to average|\[c\]|–)"
_GAP = r"(?:narrowed|widened|no clear change|–)"
COLUMN_TYPES = {
    "Registered": "count", "Recorded": "count", "Expected": "expected", "Missing": "count",
    "Expected − recorded": "count", "Change in gap": "gap",
    "Rows read": "count", "Rows loaded": "count", "Rows rejected": "count",
    "Rate": "rate", "Ratio (95% CI)": "ratio", "Overall": "overall",
    "Ethnicity not recorded": "share", "No LSOA": "share", "LSOA not matched": "share",
    "No neighbourhood": "share",
}
_TYPE_RE = {"count": _COUNT, "expected": _COUNT, "rate": _RATE, "share": _SHARE, "ratio": _RATIO,
            "overall": _OVERALL, "gap": _GAP}
LABEL_COLUMNS = ("Condition", "Breakdown", "Group", "Practice", "Area", "Input file")
# a header: label columns, then typed columns (longest names first so 'Rows read' beats 'Rows')
_HEAD_NAMES = sorted(COLUMN_TYPES, key=len, reverse=True)


def _parse_header(line: str) -> list[str] | None:
    s = line.strip()
    labels = []
    while True:
        for lab in LABEL_COLUMNS:
            if s.startswith(lab + " "):
                labels.append(lab)
                s = s[len(lab) + 1:]
                break
        else:
            break
    if not labels:
        return None
    cols = []
    while s:
        for name in _HEAD_NAMES:
            if s == name or s.startswith(name + " "):
                cols.append(name)
                s = s[len(name):].lstrip()
                break
        else:
            return None
    if not any(COLUMN_TYPES[c] in ("count", "share") for c in cols):
        return None
    return cols


def _row_regex(cols: list[str]) -> re.Pattern:
    return re.compile(r"^(?P<label>.+) " + " ".join(f"(?P<c{i}>{_TYPE_RE[COLUMN_TYPES[c]]})"
                                                     for i, c in enumerate(cols)) + r"$")


_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)"  # 1,234 or 1234 (a comma after a number is punctuation)
_SMALL_INT = re.compile(r"(?<![\w.,–\-/+:])" + _NUMBER + r"(?![\w%]|[.,–\-/+]\d)")
_SENTENCE = re.compile(r"(?<![\w.,–\-/+:])(?<!and )(?:about )?" + _NUMBER + r" (?:fewer|more|patients?|people|persons?|adults?|"
                       r"children|women|men|females?|males?|recorded|registered|cases?|deaths?|died)\b")
# harmless contexts for a small integer (regexes applied around the number; `{N}` marks it)
_SAFE = [re.compile(p.replace("{N}", r"(?P<n>\d+)")) for p in (
    r"Page {N} of \d+", r"Page \d+ of {N}", r"Page {N}:", r"Chart\s{N}\b", r"page {N}\b", r"Page {N}\b",
    r"^\s*{N}\. [A-Z]", r"distance from {N}\b", r"\bGap {N}\b",
    r"\b{N} (?:January|February|March|April|May|June|July|August|September|October|November|December) \d{4}",
    r"\b{N}(?:–|-)\d+", r"\d+(?:–|-){N}\b", r"\b{N}\+", r"quintile {N}\b", r"\b{N} \((?:most|least) deprived\)",
    r"\b{N} = most deprived", r"\({N}\)", r"(?:includes|around|above|below|Below|Above|than) {N}\b", r"\b{N} means\b",
    r"from {N} to \d+", r"from \d+ to {N}\b", r"between \d+ and {N}\b", r"nearest {N}\b", r"to {N}, \d+, \d+", r"to \d+, {N}, \d+",
    r"\b{N} (?:groups?|PCNs?|pcns?|practices?|primary care networks?|neighbourhoods?|areas?|ICBs?|panels?|"
    r"this pcn's practices|hidden by disclosure control)\b", r"\b{N} and over\b", r"aged {N}\b", r"\b{N} times\b",
    r"threshold {N}\b", r"\band {N} more\b", r"PDF/UA-{N}", r"ua-{N}", r"networks and {N}\s*$", r"version [\d.]*{N}", r"\bgroups \([^()]*(?:\([^()]*\)[^()]*)*\)",
)]


def _pdf_text(path: Path) -> tuple[list[str], list[str], dict]:
    from pypdf import PdfReader

    r = PdfReader(str(path))
    pages = [p.extract_text() or "" for p in r.pages]
    alts: list[str] = []
    try:
        root = r.trailer["/Root"]
        st = root.get("/StructTreeRoot")
        stack = [st.get_object()] if st is not None else []
        seen = set()
        while stack:
            node = stack.pop()
            if hasattr(node, "get_object"):
                node = node.get_object()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, dict):
                for k in ("/Alt", "/ActualText", "/T", "/E"):
                    if k in node:
                        alts.append(str(node[k]))
                kids = node.get("/K")
                if kids is not None:
                    stack.extend(kids if isinstance(kids, list) else [kids])
            elif isinstance(node, list):
                stack.extend(node)
    except Exception:  # a scan helper: a PDF without a usable structure tree simply has no alt text
        pass
    meta = {str(k): str(v) for k, v in (r.metadata or {}).items()}
    return pages, alts, meta


def _check_count_cell(v: str, where: str, res: ScanResult, thr: int, rnd: int, method: str,
                      expected: bool = False) -> None:
    if v in (MARKER, "–"):
        return
    x = _num(v)
    res.count_cells += 1
    res.pdf_count_numbers += 1
    if x is None:
        res.problems.append(f"{where}: count cell {v!r} unreadable")
        return
    if expected:
        if not on_grid(x, rnd, method):
            res.problems.append(f"{where}: expected {v} not rounded")
        return
    p = count_problem(x, thr, rnd, method)
    if p:
        res.problems.append(f"{where}: {p}")


def _scan_lines(lines: list[str], rel: str, res: ScanResult, thr: int, rnd: int, method: str) -> None:
    cols: list[str] | None = None
    rx = None
    claimed: set[int] = set()
    tables: list[tuple[list[str], list]] = []
    for li, line in enumerate(lines):
        h = _parse_header(line)
        if h is not None:
            cols, rx = h, _row_regex(h)
            tables.append((cols, []))
            claimed.add(li)
            continue
        if rx is None:
            continue
        m = rx.match(line.strip())
        if not m:
            cols, rx = None, None
            continue
        claimed.add(li)
        res.table_rows += 1
        tables[-1][1].append(m)
        where = f"{rel}: row {m.group('label')!r}"
        cells = {c: m.group(f"c{i}") for i, c in enumerate(cols)}
        for c, v in cells.items():
            t = COLUMN_TYPES[c]
            if t in ("count", "expected"):
                _check_count_cell(v, f"{where} column {c!r}", res, thr, rnd, method, expected=t == "expected")
        if cells.get("Recorded") == MARKER:
            shown = [c for c in ("Rate", "Ratio (95% CI)", "Missing", "Expected − recorded")
                     if c in cells and cells[c] not in (MARKER, "–")]
            if shown:
                res.problems.append(f"{where}: Recorded hidden but {shown} shown")
        if cells.get("Registered") == MARKER and cells.get("Rate") not in (None, MARKER, "–"):
            res.problems.append(f"{where}: Registered hidden but the rate is shown")
        den = _num(cells.get("Registered", ""))
        for c, v in cells.items():
            if COLUMN_TYPES[c] != "share" or v in (MARKER, "–") or den is None:
                continue
            s = _num(v.rstrip("%"))
            res.pdf_count_numbers += 1
            if s is None:
                continue
            # the count behind a share given to one decimal place, and the rounding of the denominator
            lo = max(s - 0.05, 0) / 100 * max(den - rnd / 2, 0)
            hi = (s + 0.05) / 100 * (den + rnd / 2)
            if lo >= 0.5 and hi < thr + 0.5:
                res.problems.append(f"{where}: {c} {v} of {den:g} is a count of 1..{thr}")
    _dq_siblings(tables, rel, res)
    # sentences and everything else
    for li, line in enumerate(lines):
        if li in claimed:  # table rows were checked cell by cell
            res.numbers += len(_SMALL_INT.findall(line))
            continue
        for m in _SENTENCE.finditer(line):
            res.pdf_count_numbers += 1
            x = _num(m.group(1))
            # "about N fewer/more" is a published count (grid and threshold); "N patients/…" may be prose
            # ("below 10 patients"), so only a small N is a problem there
            if x is not None and (m.group(0).endswith(("fewer", "more")) or 0 < x <= thr):
                p = count_problem(x, thr, rnd, method)
                if p:
                    res.problems.append(f"{rel}: {p} in {line.strip()!r}")
        sentence_spans = [m.span(1) for m in _SENTENCE.finditer(line)]
        nums = list(_SMALL_INT.finditer(line))
        res.numbers += len(nums)
        if re.fullmatch(r"[\d.,\s–-]+", line.strip()):  # a line of axis ticks
            continue
        safe_spans = [m.span("n") if "n" in m.groupdict() else m.span() for p in _SAFE for m in p.finditer(line)]
        for m in nums:
            x = _num(m.group(1))
            a, b = m.span(1)
            if x is None or not (1 <= x <= thr) or (a, b) in sentence_spans or \
                    any(lo <= a and b <= hi for lo, hi in safe_spans):
                continue
            if re.search(r"(?:19|20)\d\d", m.group(1)):
                continue
            res.unexplained.append(f"{rel}: {m.group(1)} in {line.strip()!r}")


def _dq_siblings(tables: list, rel: str, res: ScanResult) -> None:
    """Data-quality tables come as a one-row table (the PCN or ICB) followed by the table of its parts (its
    practices or PCNs), which add up to it: a single hidden cell among them could be recovered. A share whose
    denominator is hidden ('–') counts as hidden."""
    for (c1, r1), (c2, r2) in zip(tables, tables[1:], strict=False):
        if c1 != c2 or len(r1) != 1 or not r2 or not any(COLUMN_TYPES[c] == "share" for c in c1):
            continue
        for i, c in enumerate(c1):
            if COLUMN_TYPES[c] not in ("share", "count"):
                continue
            res.sibling_sets += 1
            def hid(m, i=i):
                return m.group(f"c{i}") in (MARKER, "–")

            n_hidden = hid(r1[0]) + sum(hid(m) for m in r2)
            if n_hidden == 1:
                who = r1[0].group("label") if hid(r1[0]) else next(m.group("label") for m in r2 if hid(m))
                res.problems.append(f"{rel}: data quality column {c!r}: {who!r} is the only hidden cell among "
                                    f"{r1[0].group('label')!r} and its {len(r2)} parts, so it can be recovered")


def _scan_pdf(path: Path, rel: str, res: ScanResult, thr: int, rnd: int, method: str) -> None:
    pages, alts, meta = _pdf_text(path)
    lines = [ln for p in pages for ln in p.splitlines()]
    _scan_lines(lines, rel, res, thr, rnd, method)
    _scan_lines([a for a in alts], rel + " (alt text)", res, thr, rnd, method)
    _scan_lines(list(meta.values()), rel + " (metadata)", res, thr, rnd, method)


# ---------------------------------------------------------------------------------------------- entry

def scan_reports(reports_dir, threshold: int = 7, rounding: int = 5, method: str = "round",
                 community_threshold: int | None = None) -> ScanResult:
    """Scan every CSV, PDF and text file under `reports_dir`; see the module docstring for the rules.
    PDFs under community/ are held to `community_threshold` (default: `threshold`)."""
    reports_dir = Path(reports_dir)
    res = ScanResult()
    cells: dict = {}
    for path in sorted(p for p in reports_dir.rglob("*") if p.is_file()):
        rel = str(path.relative_to(reports_dir))
        res.files += 1
        suffix = path.suffix.lower()
        thr = community_threshold if (community_threshold and path.parent.name == "community") else threshold
        if suffix == ".csv":
            res.csv_files += 1
            _scan_csv(path, rel, res, thr, rounding, method, cells)
        elif suffix == ".pdf":
            res.pdf_files += 1
            _scan_pdf(path, rel, res, thr, rounding, method)
        elif suffix in (".txt", ".md"):
            res.text_files += 1
            _scan_lines(path.read_text(encoding="utf-8").splitlines(), rel, res, thr, rounding, method)
    for key, vals, rel in cells.pop("__community__", []):
        main = cells.get(key)
        if main is None:
            continue
        for c, v, m in zip(COUNT_COLUMNS, vals, main[0]):
            if v != m and v != MARKER:
                res.problems.append(f"{rel}: cell {key} `{c}` is {v!r} there but {m!r} in {main[1]} "
                                    f"(the community summary may only hide more)")
    _sibling_check(cells, res)
    return res


if __name__ == "__main__":  # python tests/disclosure_scan.py REPORTS_DIR [threshold rounding method]
    import sys

    a = sys.argv[1:]
    r = scan_reports(a[0], *(int(x) for x in a[1:3]), *a[3:4])
    for p in r.problems:
        print("PROBLEM", p)
    for u in r.unexplained:
        print("unexplained", u)
    print(r.summary())

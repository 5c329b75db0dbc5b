"""Charts for the packs, written directly as SVG (1 SVG unit = 1 pt; 504 pt = the A4 text width).

Why not matplotlib: a matplotlib SVG takes 0.1-0.3 s to lay out and save, and a PCN pack has about seven
charts; writing the few shapes these charts need directly takes milliseconds, so a pack renders well under
half a second. Text is set in DejaVu Sans (the font typst is given), measured with FreeType (matplotlib's
ft2font) for layout.

Accessibility: Okabe-Ito colour-blind-safe colours, and significance is never shown by colour alone:
each category has its own marker shape (down triangle = lower than expected, up triangle = higher,
circle = similar) and the maps use hatching as well as fill; every chart function returns alt text saying
what the chart shows, which the caller passes to typst's `image(alt: …)`. Inputs are already
disclosure-controlled (NaN = hidden), so nothing hidden can be drawn.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.disclosure import MARKER

WIDTH = 504.0
FONT = "DejaVu Sans"
INK = "#222222"
MUTED = "#666666"
GRID = "#E3E3E3"
STYLE = {
    "lower": dict(color="#D55E00", marker="v", label="Fewer than average (same age, sex)"),
    "higher": dict(color="#0072B2", marker="^", label="More than average (same age, sex)"),
    "similar": dict(color="#6E6E6E", marker="o", label="Similar (interval includes 1)"),
}
HIGHLIGHT = "#009E73"
SERIES = [("#000000", "o", None), ("#D55E00", "v", "5 2"), ("#0072B2", "s", "2 2"), ("#CC79A7", "D", "6 2 1 2"),
          ("#E69F00", "^", "1 2"), ("#56B4E9", "o", "8 3")]


# ---------------------------------------------------------------------------------------------- text metrics

@lru_cache(maxsize=2)
def _font(bold: bool):
    from matplotlib.ft2font import FT2Font

    return FT2Font(str(paths.font_dir() / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")))


def text_width(s: str, size: float = 8.0, bold: bool = False) -> float:
    """Advance width of `s` in pt at `size` pt: measured at 100 pt and scaled, because hinting at small sizes
    under-measures text by up to a fifth (labels of 7 pt or less were cut off)."""
    return _width_100(s, bold) * size / 100.0


@lru_cache(maxsize=4096)
def _width_100(s: str, bold: bool) -> float:
    if not s:
        return 0.0
    f = _font(bold)
    f.set_size(100.0, 72)
    f.set_text(s, 0.0)
    return f.get_width_height()[0] / 64.0


# ---------------------------------------------------------------------------------------------- canvas

def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if math.isfinite(x) else "0"


class Canvas:
    def __init__(self, width: float, height: float):
        self.w, self.h = width, height
        self.parts: list[str] = []
        self.defs: list[str] = []

    def line(self, x1, y1, x2, y2, stroke=INK, width=0.8, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
                          f'stroke-width="{width}"{d}/>')

    def polyline(self, xs, ys, stroke=INK, width=0.8, dash=None):
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y))
        if pts:
            d = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill="none", stroke="none", width=0.5):
        self.parts.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" fill="{fill}" '
                          f'stroke="{stroke}" stroke-width="{width}"/>')

    def path(self, d, fill="none", stroke=INK, width=0.5):
        self.parts.append(f'<path d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="{width}" '
                          f'fill-rule="evenodd"/>')

    def text(self, x, y, s, size=8.0, anchor="start", fill=INK, bold=False):
        # centred on y by hand (0.35 em ~ half the x-height): renderers differ in dominant-baseline support
        dy = 0.35 * size
        b = ' font-weight="bold"' if bold else ""
        self.parts.append(f'<text x="{_n(x)}" y="{_n(y + dy)}" font-family="{FONT}" font-size="{size}" '
                          f'text-anchor="{anchor}" fill="{fill}"{b}>{escape(str(s))}</text>')

    def marker(self, kind, x, y, r=3.6, fill=INK, stroke="white", width=0.5):
        if not (math.isfinite(x) and math.isfinite(y)):
            return
        if kind == "o":
            self.parts.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r * 0.85)}" fill="{fill}" stroke="{stroke}" '
                              f'stroke-width="{width}"/>')
            return
        if kind == "v":
            pts = [(x - r, y - r * 0.8), (x + r, y - r * 0.8), (x, y + r)]
        elif kind == "^":
            pts = [(x - r, y + r * 0.8), (x + r, y + r * 0.8), (x, y - r)]
        elif kind == "D":
            pts = [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
        else:  # square
            s = r * 0.8
            pts = [(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
        p = " ".join(f"{_n(a)},{_n(b)}" for a, b in pts)
        self.parts.append(f'<polygon points="{p}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')

    def vtext(self, x, y, s, size=7.5):
        """Text turned a quarter to the left, centred on (x, y): an axis title."""
        self.parts.append(f'<text transform="translate({_n(x)},{_n(y)}) rotate(-90)" font-family="{FONT}" '
                          f'font-size="{size}" text-anchor="middle" fill="{INK}">{escape(s)}</text>')

    def svg(self) -> str:
        defs = f"<defs>{''.join(self.defs)}</defs>" if self.defs else ""
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(self.w)}" height="{_n(self.h)}" '
                f'viewBox="0 0 {_n(self.w)} {_n(self.h)}">{defs}<rect width="100%" height="100%" fill="white"/>'
                + "".join(self.parts) + "</svg>")

    def save(self, path: Path) -> None:
        Path(path).write_text(self.svg(), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- scales

class LogScale:
    CANDS = (0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 10, 20, 50)

    def __init__(self, lo: float, hi: float, x0: float, x1: float):
        lo = min(lo, 0.8) if math.isfinite(lo) and lo > 0 else 0.5
        hi = max(hi, 1.25) if math.isfinite(hi) else 2.0
        self.lo, self.hi = max(lo / 1.12, 0.05), min(hi * 1.12, 50.0)
        self.x0, self.x1 = x0, x1
        self.a, self.b = math.log(self.lo), math.log(self.hi)

    def __call__(self, v):
        v = np.asarray(v, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.x0 + (np.log(np.clip(v, self.lo, self.hi)) - self.a) / (self.b - self.a) * (self.x1 - self.x0)

    def ticks(self, max_ticks: int = 6) -> list[float]:
        t = [c for c in self.CANDS if self.lo <= c <= self.hi]
        if len(t) > max_ticks:
            t = [c for c in t if c in (0.1, 0.25, 0.5, 1, 2, 4, 10, 20, 50)]
        if len(t) > max_ticks:
            t = [c for c in t if c in (0.1, 0.5, 1, 2, 10, 50)]
        return t


class LinScale:
    def __init__(self, lo: float, hi: float, p0: float, p1: float):
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            lo, hi = 0.0, 1.0
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1

    def __call__(self, v):
        v = np.asarray(v, dtype=float)
        return self.p0 + (np.clip(v, self.lo, self.hi) - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self, n: int = 5) -> list[float]:
        span = self.hi - self.lo
        raw = span / max(n, 1)
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        start = math.ceil(self.lo / step) * step
        return [round(start + i * step, 10) for i in range(int((self.hi - start) / step + 1e-9) + 1)]


def significance(lower, upper) -> np.ndarray:
    """'lower' / 'higher' / 'similar' from the ratio interval against 1 (never from the point estimate);
    '' where there is no interval (hidden or not calculable)."""
    from pipeline.stats import compare_to_parent

    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    if lo.size == 0:
        return np.array([], dtype=str)
    return np.atleast_1d(compare_to_parent(lo, hi, 1.0)).astype(str)


def _legend(c: Canvas, y: float, items: list[tuple[str, str, str]], size=7.5) -> None:
    """Centred legend row: (marker, colour, label)."""
    widths = [14 + text_width(lab, size) + 16 for _, _, lab in items]
    x = (c.w - sum(widths)) / 2
    for (mk, col, lab), wd in zip(items, widths):
        c.marker(mk, x + 5, y, fill=col)
        c.text(x + 13, y, lab, size=size, fill=INK)
        x += wd


def hidden_flags(df: pd.DataFrame) -> np.ndarray:
    """Rows whose ratio is hidden by disclosure control: any count it is computed from (recorded, registered or
    expected) was hidden. Charts print "[c] hidden" there, never "no patients"."""
    flags = np.zeros(len(df), dtype=bool)
    for column in ("observed_redacted", "population_redacted", "expected_redacted"):
        if column in df:
            flags |= df[column].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return flags


def _boxed_text(c: Canvas, x: float, y: float, s: str, fill: str, size: float = 6.5) -> None:
    w_ = text_width(s, size) + 6
    c.rect(x - w_ / 2, y - size * 0.75, w_, size * 1.5, fill="white")
    c.text(x, y, s, size=size, anchor="middle", fill=fill)


# ---------------------------------------------------------------------------------------------- dot chart

PANELS_PER_ROW = 4   # panels side by side; more conditions wrap onto further rows (21 QOF registers: 6 rows)


def _panel_grid(k: int, left: float, gap: float, top: float, panel_h: float, between: float,
                below: float) -> tuple[int, int, float, float, float]:
    """(columns, rows, panel width, height of a row of panels, chart height) of `k` panels, PANELS_PER_ROW to
    a row across the page: `left` before the first column, `gap` between columns, `top` above each panel (its
    title), `between` under a row of panels that another follows, `below` under the last."""
    cols = max(min(k, PANELS_PER_ROW), 1)
    rows = math.ceil(max(k, 1) / cols)
    block_h = top + panel_h + between
    height = block_h * (rows - 1) + top + panel_h + below
    return cols, rows, (WIDTH - left - gap * (cols - 1) - 6) / cols, block_h, height


def fit_text(s: str, width: float, size: float = 8.5, bold: bool = True) -> str:
    """`s`, cut with an ellipsis where it would be wider than `width` points (a panel's title)."""
    if text_width(s, size, bold) <= width:
        return s
    while s and text_width(s + "…", size, bold) > width:
        s = s[:-1]
    return s.rstrip() + "…"


def _row_group(c: Canvas, row: int, block_h: float):
    """Draw into the panel row `row` (an SVG group moved down by `row` blocks); close it with c.parts.append('</g>')."""
    c.parts.append(f'<g transform="translate(0,{_n(row * block_h)})">')


def _panels(c: Canvas, panels, cols: int, left: float, step: float, block_h: float):
    """(index, title, frame, left edge) of each panel, drawn into its row's group (`step`: panel width + gap)."""
    for j, (title, df) in enumerate(panels):
        _row_group(c, j // cols, block_h)
        yield j, title, df, left + (j % cols) * step
        c.parts.append("</g>")


def dot_chart(panels: Sequence[tuple[str, pd.DataFrame]], path: Path, xlabel: str = "Recorded ÷ expected",
              legend: dict | None = None, alt_words: dict | None = None, alt_intro: str | None = None,
              nan_text: str | None = None) -> str:
    """Ordered dot chart of ratios with 95% interval whiskers, one panel per condition, groups shared down the
    left. Panel frames: label, ratio, ratio_lower, ratio_upper and optionally `hidden` (True = hidden by
    disclosure control), in display order (top to bottom). Returns the alt text.

    For other ratios than recorded ÷ expected (e.g. the RII): `legend` relabels the three categories
    ({"lower": …, "higher": …, "similar": …}), `alt_words` gives the alt text's phrases for them
    ({"lower": "clearly lower than expected for", "higher": …}), `alt_intro` replaces the alt text's first
    sentence and `nan_text` the note drawn where a shown row has no value."""
    labels = [str(x) for x in panels[0][1]["label"]] if panels else []
    n = max(len(labels), 1)
    row_h, top, gap = 15.0, 18.0, 14.0
    label_w = max([text_width(s, 7.5) for s in labels] + [20]) + 8
    cols, rows, pw, block_h, height = _panel_grid(len(panels), label_w, gap, top, row_h * n, 30, 44.0)
    c = Canvas(WIDTH, height)
    vals = np.concatenate([p[c_].to_numpy(dtype=float) for _, p in panels for c_ in ("ratio_lower", "ratio_upper")]) \
        if panels else np.array([])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    # every interval end in view, within 0.2-5 (wider ones get an arrow at the edge)
    lo_all = max(float(vals.min()), 0.2) if vals.size else 0.5
    hi_all = min(float(vals.max()), 5.0) if vals.size else 2.0
    ys = top + row_h * (np.arange(n) + 0.5)
    for row in range(rows):
        _row_group(c, row, block_h)
        for i, s in enumerate(labels):
            c.text(label_w - 6, ys[i], s, size=7.5, anchor="end")
        c.parts.append("</g>")
    summary = []
    for _, title, df, x0 in _panels(c, panels, cols, label_w, pw + gap, block_h):
        x1 = x0 + pw
        sc = LogScale(lo_all, hi_all, x0 + 4, x1 - 4)
        c.text(x0, 7, fit_text(title, pw + 4), size=8.5, bold=True)
        # zebra rows, grid and axis
        for i in range(n):
            if i % 2 == 0:
                c.rect(x0, top + row_h * i, pw, row_h, fill="#F6F6F6")
        for t in sc.ticks(max(3, int(pw // 32))):  # about one tick label per 32 pt, so labels never touch
            xt = float(sc(t))
            c.line(xt, top, xt, top + row_h * n, stroke=GRID, width=0.6)
            c.text(xt, top + row_h * n + 8, f"{t:g}", size=7, anchor="middle", fill=MUTED)
        c.line(x0, top + row_h * n, x1, top + row_h * n, stroke="#999999", width=0.6)
        x_one = float(sc(1.0))
        c.line(x_one, top - 2, x_one, top + row_h * n, stroke="#333333", width=0.8, dash="3 2")
        c.text((x0 + x1) / 2, top + row_h * n + 20, fit_text(xlabel, pw + 6, 7.5, bold=False), size=7.5, anchor="middle")
        r = df["ratio"].to_numpy(dtype=float)
        lo = df["ratio_lower"].to_numpy(dtype=float)
        hi = df["ratio_upper"].to_numpy(dtype=float)
        hidden = df["hidden"].to_numpy(dtype=bool) if "hidden" in df else ~np.isfinite(r)
        sig = significance(lo, hi)
        pop = df["population"].to_numpy(dtype=float) if "population" in df else np.ones(len(df))
        xm = (x0 + x1) / 2
        for i in range(min(n, len(df))):
            y = ys[i]
            if hidden[i]:
                _boxed_text(c, xm, y, f"{MARKER} hidden", MUTED)
                continue
            if not math.isfinite(r[i]):
                empty = "not in this group's age range" if n > 8 else "no patients"
                _boxed_text(c, xm, y, nan_text or ("none expected" if math.isfinite(pop[i]) else empty), "#999999")
                continue
            st = STYLE.get(sig[i], STYLE["similar"])
            xa = xb = float("nan")
            if math.isfinite(lo[i]) and math.isfinite(hi[i]):
                xa, xb = float(sc(max(lo[i], 1e-9))), float(sc(hi[i]))
                c.line(xa, y, xb, y, stroke=st["color"], width=1.5)
                for off_edge, tip, back in ((hi[i] > sc.hi, xb, xb - 4), (lo[i] < sc.lo, xa, xa + 4)):
                    if off_edge:  # the interval runs off the scale: an arrow head at the edge
                        c.path(f"M{_n(back)},{_n(y - 3)} L{_n(tip)},{_n(y)} L{_n(back)},{_n(y + 3)}",
                               stroke=st["color"], width=1.0)
            if r[i] <= 0:
                # nothing recorded: no point on a log scale; say so beside the interval
                tx = xb + 4 if math.isfinite(xb) and xb + 50 < x1 else x0 + 4
                c.text(tx, y - (0 if tx > x0 + 4 else 5), "0 recorded", size=6.5, fill=st["color"])
            else:
                c.marker(st["marker"], float(sc(r[i])), y, fill=st["color"])
        aw = {"lower": "clearly lower than expected for", "higher": "clearly higher than expected for",
              "none": "no group clearly differs from expected", **(alt_words or {})}
        found = {key: [lab for lab, s, h in zip(labels, sig, hidden) if s == key and not h]
                 for key in ("lower", "higher")}
        part = f"{title}: " + ("; ".join(f"{aw[key]} " + ", ".join(names) for key, names in found.items()
                                         if names) or aw["none"])
        if hidden.any():
            part += f" ({int(hidden.sum())} hidden by disclosure control)"
        summary.append(part)
    _legend(c, height - 9, [(s["marker"], s["color"], (legend or {}).get(k, s["label"])) for k, s in STYLE.items()])
    c.save(path)
    intro = alt_intro or (f"Dot chart of recorded-to-expected ratios with 95% intervals for {n} groups "
                          f"({', '.join(labels[:8])}{', …' if n > 8 else ''}), one panel per condition; "
                          f"1 means as many recorded as expected.")
    return intro + " " + ". ".join(summary) + "."


# ---------------------------------------------------------------------------------------------- funnel

def _axes(c: Canvas, x0, x1, y0, y1, xs, ys, xticks, yticks, xlabel, ylabel, title):
    c.text(x0, 7, fit_text(title, x1 - x0 + 4), size=8.5, bold=True)
    for t in yticks:
        yy = float(ys(t))
        c.line(x0, yy, x1, yy, stroke=GRID, width=0.6)
        c.text(x0 - 3, yy, f"{t:g}", size=7, anchor="end", fill=MUTED)
    for t in xticks:
        xx = float(xs(t))
        c.line(xx, y1, xx, y1 + 3, stroke="#999999", width=0.6)
        c.text(xx, y1 + 9, f"{t:g}", size=7, anchor="middle", fill=MUTED)
    c.line(x0, y1, x1, y1, stroke="#999999", width=0.6)
    c.line(x0, y0, x0, y1, stroke="#999999", width=0.6)
    c.text((x0 + x1) / 2, y1 + 21, xlabel, size=7.5, anchor="middle")
    if ylabel:
        c.vtext(x0 - 24, (y0 + y1) / 2, ylabel)


def _log_ticks(lo: float, hi: float) -> list[float]:
    out = []
    for e in range(int(math.floor(math.log10(max(lo, 1e-9)))), int(math.ceil(math.log10(max(hi, 1e-9)))) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
    if len(out) > 6:
        out = [v for v in out if str(v).lstrip("0.").startswith("1")] or out
    return out


def funnel_chart(panels: Sequence[tuple[str, pd.DataFrame]], path: Path,
                 highlight_label: str = "This PCN's practices", other_label: str = "Other practices in the ICB") -> str:
    """Ratio funnel plots, one panel per condition. Frame columns: expected, ratio, highlight (bool), label.
    Limits: exact Poisson 95% and 99.8% funnels around 1 (pipeline.stats.funnel_limits_ratio)."""
    from pipeline.stats import funnel_limits_ratio

    left, gap, top, ph = 36.0, 34.0, 16.0, 130.0
    cols, _, pw, block_h, height = _panel_grid(len(panels), left, gap, top, ph, 34, 48)
    c = Canvas(WIDTH, height)
    notes = []
    for j, title, df, x0 in _panels(c, panels, cols, left, pw + gap, block_h):
        x1, y0, y1 = x0 + pw, top, top + ph
        r_all = df["ratio"].to_numpy(dtype=float)
        e_all = df["expected"].to_numpy(dtype=float)
        ok = np.isfinite(r_all) & np.isfinite(e_all) & (e_all > 0)
        d, e, r = df[ok], e_all[ok], r_all[ok]
        if d.empty:
            c.text(x0, 7, title, size=8.5, bold=True)
            c.text((x0 + x1) / 2, (y0 + y1) / 2, "Nothing to show", size=7.5, anchor="middle", fill=MUTED)
            notes.append(f"{title}: nothing to show")
            continue
        elo, ehi = max(e.min() * 0.7, 0.5), e.max() * 1.4
        grid = np.geomspace(elo, ehi, 60)
        lim = funnel_limits_ratio(grid)
        ymax = max(1.6, float(np.nanmax(r)) * 1.1, float(np.nanmin([np.nanmax(lim.upper_998), 3.0])))
        xs = LogScale.__new__(LogScale)
        xs.lo, xs.hi, xs.x0, xs.x1, xs.a, xs.b = elo, ehi, x0, x1, math.log(elo), math.log(ehi)
        ys = LinScale(0.0, ymax, y1, y0)
        _axes(c, x0, x1, y0, y1, xs, ys, _log_ticks(elo, ehi), ys.ticks(4), "Expected number (log scale)",
              "Recorded ÷ expected" if j % cols == 0 else "", title)
        gx = xs(grid)
        for arr, dash, col in ((lim.lower_95, "3 2", "#888888"), (lim.upper_95, "3 2", "#888888"),
                               (lim.lower_998, None, "#444444"), (lim.upper_998, None, "#444444")):
            a = np.asarray(arr, dtype=float)
            m = np.isfinite(a) & (a <= ymax)
            c.polyline(gx[m], ys(a[m]), stroke=col, width=0.8, dash=dash)
        c.line(x0, float(ys(1.0)), x1, float(ys(1.0)), stroke="#333333", width=0.6, dash="1 2")
        hl = d["highlight"].to_numpy(dtype=bool)
        for ee, rr in zip(e[~hl], r[~hl]):
            c.marker("o", float(xs(ee)), float(ys(rr)), r=2.6, fill="#BBBBBB", stroke="#888888", width=0.3)
        for ee, rr in zip(e[hl], r[hl]):
            c.marker("D", float(xs(ee)), float(ys(rr)), r=3.4, fill=HIGHLIGHT, stroke="#000000", width=0.4)
        u95 = np.interp(np.log(e), np.log(grid), np.asarray(lim.upper_95, dtype=float))
        l95 = np.interp(np.log(e), np.log(grid), np.asarray(lim.lower_95, dtype=float))
        labs = d["label"].astype(str).to_numpy()
        above = labs[hl & (r > u95)].tolist()
        below = labs[hl & (r < l95)].tolist()
        notes.append(f"{title}: {int(hl.sum())} {highlight_label.lower()} shown; below the 95% limit: "
                     f"{', '.join(below) or 'none'}; above: {', '.join(above) or 'none'}")
    y = height - 9
    items = [("D", HIGHLIGHT, highlight_label), ("o", "#BBBBBB", other_label)]
    widths = [14 + text_width(lab, 7.5) + 16 for _, _, lab in items] + [26 + text_width("95% limits", 7.5) + 16,
                                                                         26 + text_width("99.8% limits", 7.5)]
    x = (WIDTH - sum(widths)) / 2
    for (mk, col, lab), wd in zip(items, widths):
        c.marker(mk, x + 5, y, fill=col, stroke="#000000" if mk == "D" else "#888888", width=0.4)
        c.text(x + 13, y, lab, size=7.5)
        x += wd
    for lab, dash, col in (("95% limits", "3 2", "#888888"), ("99.8% limits", None, "#444444")):
        c.line(x, y, x + 20, y, stroke=col, width=0.9, dash=dash)
        c.text(x + 24, y, lab, size=7.5)
        x += 26 + text_width(lab, 7.5) + 16
    c.save(path)
    return ("Funnel plots of the recorded-to-expected ratio against the expected number, with 95% and 99.8% "
            "limits around 1 (points outside them differ by more than chance would easily explain). "
            + ". ".join(notes) + ".")


# ---------------------------------------------------------------------------------------------- trend

def trend_chart(panels: Sequence[tuple[str, pd.DataFrame]], path: Path) -> str:
    """Ratio at each period with 95% intervals, one panel per condition. Frame columns: series, period (label),
    ratio, ratio_lower, ratio_upper. Series differ by marker and line pattern as well as colour."""
    names = list(dict.fromkeys(s for _, df in panels for s in df["series"]))
    style = {s: SERIES[i % len(SERIES)] for i, s in enumerate(names)}
    left, gap, top, ph = 36.0, 26.0, 22.0, 110.0
    cols, _, pw, block_h, legend_top = _panel_grid(len(panels), left, gap, top, ph, 16, 26)
    c = Canvas(WIDTH, legend_top + 13 * math.ceil(len(names) / 3))  # the legend: three series to a row
    vals = np.concatenate([df[c_].to_numpy(dtype=float) for _, df in panels for c_ in ("ratio_lower", "ratio_upper", "ratio")]) \
        if panels else np.array([1.0])
    vals = vals[np.isfinite(vals)]
    ymin = max(min(0.9, float(vals.min()) if vals.size else 0.5), 0.0)
    ymax = min(max(1.1, float(vals.max()) if vals.size else 1.5), 3.0)
    pad = (ymax - ymin) * 0.08
    ys_proto = (max(0.0, ymin - pad), ymax + pad)
    descr = []
    for j, title, df, x0 in _panels(c, panels, cols, left, pw + gap, block_h):
        first_column = j % cols == 0
        x1, y0, y1 = x0 + pw, top, top + ph
        periods = list(dict.fromkeys(df["period"]))
        m = len(periods)
        xpos = {p: x0 + (i + 0.5) * pw / max(m, 1) for i, p in enumerate(periods)}
        ys = LinScale(ys_proto[0], ys_proto[1], y1, y0)
        c.text(x0, 7, fit_text(title, pw + 4), size=8.5, bold=True)
        for t in ys.ticks(4):
            yy = float(ys(t))
            c.line(x0, yy, x1, yy, stroke=GRID, width=0.6)
            if first_column:
                c.text(x0 - 3, yy, f"{t:g}", size=7, anchor="end", fill=MUTED)
        c.line(x0, float(ys(1.0)), x1, float(ys(1.0)), stroke="#333333", width=0.7, dash="3 2")
        c.line(x0, y1, x1, y1, stroke="#999999", width=0.6)
        for p in periods:
            c.text(xpos[p], y1 + 8, p, size=7, anchor="middle", fill=MUTED)
        for si, (s, g) in enumerate(df.groupby("series", sort=False)):
            col, mk, dash = style[s]
            off = (si - (len(names) - 1) / 2) * 4.0
            xx = np.array([xpos[p] + off for p in g["period"]])
            r = g["ratio"].to_numpy(dtype=float)
            lo, hi = g["ratio_lower"].to_numpy(dtype=float), g["ratio_upper"].to_numpy(dtype=float)
            c.polyline(xx, ys(r), stroke=col, width=1.1, dash=dash)
            for a, rr, l_, h_ in zip(xx, r, lo, hi):
                if math.isfinite(l_) and math.isfinite(h_):
                    c.line(a, float(ys(l_)), a, float(ys(h_)), stroke=col, width=0.9)
                if math.isfinite(rr):
                    c.marker(mk, a, float(ys(rr)), r=3.0, fill=col)
            pts = [f"{p} {v:.2f}" for p, v in zip(g["period"], r) if math.isfinite(v)]
            descr.append(f"{title}, {s}: " + (", ".join(pts) if pts else "hidden"))
        if first_column:
            c.vtext(x0 - 24, (y0 + y1) / 2, "Recorded ÷ expected")
    # legend: line sample + marker, three per row
    for i, s in enumerate(names):
        col, mk, dash = style[s]
        row, pos = divmod(i, 3)
        x = 40 + pos * (WIDTH - 40) / 3
        y = legend_top + 13 * row
        c.line(x, y, x + 18, y, stroke=col, width=1.1, dash=dash)
        c.marker(mk, x + 9, y, r=3.0, fill=col)
        c.text(x + 24, y, s, size=7.5)
    c.save(path)
    return ("Line chart of the recorded-to-expected ratio at each date with 95% intervals; 1 means as many "
            "recorded as expected. " + "; ".join(descr) + ".")


# ---------------------------------------------------------------------------------------------- map

def _rings(geom):
    t = geom.geom_type
    if t == "Polygon":
        yield geom.exterior.coords
        for r in geom.interiors:
            yield r.coords
    elif t in ("MultiPolygon", "GeometryCollection"):
        for g in geom.geoms:
            yield from _rings(g)


def map_chart(geoms, panels: Sequence[tuple[str, pd.DataFrame]], path: Path) -> str:
    """Neighbourhood maps, one panel per condition, shaded by significance with colour AND hatching.
    `geoms`: GeoDataFrame indexed by neighbourhood code with a `name` column (lon/lat or projected);
    frames: code, ratio_lower, ratio_upper."""
    k = max(len(panels), 1)
    gap, top = 10.0, 16.0
    pw = (WIDTH - gap * (k - 1)) / k
    minx, miny, maxx, maxy = geoms.total_bounds
    geographic = -181 <= minx and maxx <= 181 and -91 <= miny and maxy <= 91
    fx = math.cos(math.radians((miny + maxy) / 2)) if geographic else 1.0
    gw, gh = max((maxx - minx) * fx, 1e-9), max(maxy - miny, 1e-9)
    ph = min(pw * gh / gw, 200.0)
    s = min(pw / gw, ph / gh)
    height = top + ph + 24
    c = Canvas(WIDTH, height)
    c.defs.append('<pattern id="hatch-lower" patternUnits="userSpaceOnUse" width="5" height="5" '
                  'patternTransform="rotate(45)"><rect width="5" height="5" fill="#F4B183"/>'
                  '<line x1="0" y1="0" x2="0" y2="5" stroke="#A04000" stroke-width="1.2"/></pattern>')
    c.defs.append('<pattern id="hatch-higher" patternUnits="userSpaceOnUse" width="5" height="5">'
                  '<rect width="5" height="5" fill="#9DC3E6"/><circle cx="2.5" cy="2.5" r="0.9" fill="#004C80"/></pattern>')
    c.defs.append('<pattern id="hatch-none" patternUnits="userSpaceOnUse" width="6" height="6">'
                  '<rect width="6" height="6" fill="white"/><path d="M0,0 L6,6 M6,0 L0,6" stroke="#BBBBBB" '
                  'stroke-width="0.6"/></pattern>')
    paint = {"lower": "url(#hatch-lower)", "higher": "url(#hatch-higher)", "similar": "#EEEEEE",
             "": "url(#hatch-none)"}
    # project once
    shapes = {}
    for code, geom in zip(geoms.index, geoms.geometry):
        parts = []
        for ring in _rings(geom):
            xy = np.asarray(ring)[:, :2]
            px = ((xy[:, 0] - minx) * fx) * s
            py = (maxy - xy[:, 1]) * s
            parts.append("M" + " L".join(f"{_n(a)},{_n(b)}" for a, b in zip(px, py)) + " Z")
        shapes[code] = " ".join(parts)
    descr = []
    names = dict(zip(geoms.index, geoms["name"]))
    for j, (title, df) in enumerate(panels):
        x0 = j * (pw + gap)
        ox = x0 + (pw - gw * s) / 2
        c.text(x0, 7, title, size=8.5, bold=True)
        sig = dict(zip(df["code"], significance(df["ratio_lower"], df["ratio_upper"])))
        c.parts.append(f'<g transform="translate({_n(ox)},{_n(top)})">')
        for code, d in shapes.items():
            c.path(d, fill=paint[sig.get(code, "")], stroke="#555555", width=0.4)
        c.parts.append("</g>")
        low = [names[k_] for k_ in shapes if sig.get(k_) == "lower"]
        high = [names[k_] for k_ in shapes if sig.get(k_) == "higher"]
        descr.append(f"{title}: lower than expected in {', '.join(low) or 'no neighbourhood'}; higher in "
                     f"{', '.join(high) or 'no neighbourhood'}")
    # legend with swatches
    y = height - 9
    items = [("lower", "Fewer than average (hatched)"), ("similar", "Similar"),
             ("higher", "More than average (dotted)"), ("", "Hidden or no data (crossed)")]
    widths = [16 + text_width(lab, 7.5) + 14 for _, lab in items]
    x = (WIDTH - sum(widths)) / 2
    for (key, lab), wd in zip(items, widths):
        c.rect(x, y - 5, 11, 10, fill=paint[key], stroke="#555555", width=0.4)
        c.text(x + 15, y, lab, size=7.5)
        x += wd
    c.save(path)
    return (f"Maps of {len(shapes)} neighbourhoods shaded by whether recording is clearly lower (hatched), "
            f"similar (plain) or clearly higher (dotted) than expected. " + "; ".join(descr) + ".")

"""pipeline.stats against the PHEindicatormethods / PHStatsMethods reference values.

Every row of every applicable file in ``../shared/reference/phe_methods`` is exercised (vectorised
asserts; each test also checks how many rows it compared). Those tests skip when ``../shared`` is
absent; the cases typed in at the top of this file (copied from the same reference files) always run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import stats as S

REF_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "phe_methods"
needs_ref = pytest.mark.skipif(
    not (REF_DIR / "README.txt").is_file(),
    reason="reference values ../shared/reference/phe_methods not available on this machine",
)

RTOL = 1e-6  # deterministic methods (README: match to 1e-6)
MC_RTOL = 0.05  # Monte-Carlo SII limits (upstream tolerance)


def close(actual, expected, rtol=RTOL, atol=0.0, what=""):
    """Assert equal NaN pattern and closeness; return the number of finite values compared."""
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    assert a.shape == e.shape, what
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"NaN pattern differs: {what}")
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)
    return int(np.isfinite(e).sum())


def close_where_given(actual, expected, rtol=RTOL, atol=0.0, what=""):
    """Compare only where the reference gives a value (one-sided py_* rows, 95%-only rows)."""
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    m = ~np.isnan(e)
    np.testing.assert_allclose(a[m], e[m], rtol=rtol, atol=atol, err_msg=what)
    return int(m.sum())


def ref(name: str) -> pd.DataFrame:
    return pd.read_csv(REF_DIR / name)


# ==================================================================================================
# Cases typed in (from the reference files), so the suite means something without ../shared
# ==================================================================================================


def test_z_for():
    assert S.z_for(0.95) == pytest.approx(1.959963985, rel=1e-9)
    assert S.z_for(0.998) == pytest.approx(3.090232306, rel=1e-9)
    with pytest.raises(ValueError):
        S.z_for(95)


@pytest.mark.parametrize(
    "x,n,conf,lower,upper",
    [
        (1, 100, 0.95, 0.001767432064, 0.05448619618),  # Area1_m1
        (9856, 12345, 0.998, 0.7869924108, 0.8093061413),  # Area5_m1
        (7776456, 7564336677, 0.95, 0.0010273201, 0.001028764458),  # Area6_m1
        (0.445, 1, 0.95, 0.04381744772, 0.9334621277),  # BW_row10 (non-integer numerator)
        (0, 100, 0.95, 0.0, 0.03699349821),  # derived x = 0
        (100, 100, 0.998, 0.9128290627, 1.0),  # derived x = n
    ],
)
def test_wilson_typed(x, n, conf, lower, upper):
    lo, up = S.wilson_ci(x, n, conf)
    assert lo == pytest.approx(lower, rel=RTOL, abs=1e-15)
    assert up == pytest.approx(upper, rel=RTOL)


def test_wilson_invalid_gives_nan():
    lo, up = S.wilson_ci([np.nan, 10, 5, 1, 3], [100, np.nan, 0, -1, 2], 0.95)
    assert np.isnan(lo).all() and np.isnan(up).all()


@pytest.mark.parametrize(
    "x,conf,lower,upper",
    [
        (65, 0.95, 50.16318771, 82.84913855),  # BW_row2
        (1, 0.95, 0.0130721329, 5.563755582),  # BW_row4 (pure Byar, no exact switch)
        (10, 0.998, 2.916318375, 24.19372493),  # BW_row7
        (1, 0.998, np.nan, 9.362180218),  # BW_row14: negative lower -> NA
    ],
)
def test_byars_typed(x, conf, lower, upper):
    lo = S.byars_lower(x, conf)
    if np.isnan(lower):
        assert np.isnan(lo)
    else:
        assert lo == pytest.approx(lower, rel=RTOL)
    assert S.byars_upper(x, conf) == pytest.approx(upper, rel=RTOL)


@pytest.mark.parametrize(
    "x,conf,lower,upper",
    [
        (0, 0.95, 0.0, 3.688879454),
        (1, 0.998, 0.001000500334, 9.233413476),
        (9, 0.95, 4.115373097, 17.08480345),
    ],
)
def test_exact_poisson_typed(x, conf, lower, upper):
    lo, up = S.exact_poisson_ci(x, conf)
    assert lo == pytest.approx(lower, rel=RTOL, abs=0.0)
    assert up == pytest.approx(upper, rel=RTOL)


def test_poisson_count_switch_typed():
    lo, up = S.poisson_count_ci([9, 10], 0.95)
    np.testing.assert_allclose(lo, [4.115373097, 4.787449914], rtol=RTOL)
    np.testing.assert_allclose(up, [17.08480345, 18.39145861], rtol=RTOL)


def test_rate_typed():
    v, lo, up = S.rate_ci([1, 250], [100, 220], 0.95, 100000)  # Area1_m100000 (exact), Area12 (x > n)
    np.testing.assert_allclose(v, [1000, 113636.3636], rtol=RTOL)
    np.testing.assert_allclose(lo, [25.31780798, 99984.94739], rtol=RTOL)
    np.testing.assert_allclose(up, [5571.643391, 128631.1449], rtol=RTOL)


def test_isr_typed():
    # testdata_big / testdata_tiny, statistic=ratio, refvalue=100
    v, lo, up = S.isr([895, 9], 835.8835612, 0.95, refvalue=100)
    np.testing.assert_allclose(v, [107.0723294, 1.076704988], rtol=RTOL)
    np.testing.assert_allclose(lo, [100.1714771, 0.4923380825], rtol=RTOL)
    np.testing.assert_allclose(up, [114.3233287, 2.043921456], rtol=RTOL)
    v, lo, up = S.isr([0, 5, 5], [10, 0, np.nan])
    assert v[0] == 0 and lo[0] == 0 and up[0] == pytest.approx(0.3688879454, rel=RTOL)
    assert np.isnan(v[1:]).all() and np.isnan(lo[1:]).all() and np.isnan(up[1:]).all()


# testdata_small (multiarea, ESP2013): counts and populations by 19 age bands, 91 events
_SMALL_COUNTS = [13, 3, 2, 2, 1, 3, 5, 3, 3, 3, 3, 3, 5, 7, 4, 7, 8, 8, 9]


def test_dsr_typed_na_below_10():
    counts = np.array([[5, 4] + [0] * 17, _SMALL_COUNTS], dtype=float).ravel()
    pops = np.full(38, 500.0)
    res = S.dsr_dobson(counts, pops, np.tile(S.ESP2013, 2), np.repeat(["a", "b"], 19))
    assert list(res.groups) == ["a", "b"] and list(res.total_count) == [9, sum(_SMALL_COUNTS)]
    assert np.isnan([res.value[0], res.lower[0], res.upper[0]]).all()
    assert res.lower[1] < res.value[1] < res.upper[1]


def test_esp2013():
    assert S.ESP2013.sum() == 100000 and len(S.ESP2013) == 19
    assert S.ESP2013[0] == 5000 and S.ESP2013[-1] == 1000


def test_sii_typed_deterministic():
    # default_quintiles area2: sii = 3.621556338 (value_type 0)
    value = [70.54853186, 71.57155734, 72.48698671, 73.51985519, 73.14605425]
    pop = [21675, 20065, 19750, 24713, 20112]
    se = [0.2295918367, 0.259806801, 0.2992380842, 0.160751227, 0.7918228954]
    r = S.sii(value, pop, se=se, repetitions=2000)
    assert r.sii == pytest.approx(3.621556338, rel=RTOL)
    assert r.sii_lower < r.sii < r.sii_upper


def test_funnel_typed():
    lim = S.funnel_limits_proportion(0.80642448, [1, 58842], multiplier=100)
    np.testing.assert_allclose(lim.lower_95, [3.204264, 80.323212], rtol=0, atol=2e-6)
    np.testing.assert_allclose(lim.upper_95, [100, 80.961684], rtol=0, atol=2e-6)
    np.testing.assert_allclose(lim.lower_998, [0, 80.139116], rtol=0, atol=2e-6)
    ex = S.funnel_ratio_exp_events(1)
    assert ex.lower_95 == pytest.approx(5.571644585, rel=1e-4)
    assert ex.upper_998 == pytest.approx(0.001000547, rel=1e-4)
    sig = S.funnel_significance_ratio([8, 151, 159], [6.239860227, 106.4429719, 232.9329036])
    assert list(sig) == ["Not significant", "High (0.001)", "Low (0.001)"]


# ==================================================================================================
# Every row of the reference files
# ==================================================================================================


@needs_ref
def test_proportion_wilson_all_rows():
    df = ref("proportion_wilson.csv")
    v = np.empty(len(df))
    lo = np.empty(len(df))
    up = np.empty(len(df))
    for c in df.confidence.unique():
        m = (df.confidence == c).to_numpy()
        v[m], lo[m], up[m] = S.proportion_ci(df.numerator[m], df.denominator[m], c, df.multiplier[m])
    one_sided = df.case_id.str.startswith("py_").to_numpy()
    two = ~one_sided
    n = close(v, df.expected_value, what="value")
    n += close(lo[two], df.expected_lower[two], what="lower")
    n += close(up[two], df.expected_upper[two], what="upper")
    n += close_where_given(lo[one_sided], df.expected_lower[one_sided], what="py lower")
    n += close_where_given(up[one_sided], df.expected_upper[one_sided], what="py upper")
    assert one_sided.sum() == 4 and np.isnan(v).sum() == 9  # the 9 NaN-input rows give NaN
    assert n == int(df[["expected_value", "expected_lower", "expected_upper"]].notna().to_numpy().sum())
    assert len(df) == 59


@needs_ref
def test_byars_counts_all_rows():
    df = ref("byars_counts.csv")
    rows = 0
    for c in df.confidence.unique():
        g = df[df.confidence == c]
        py = g.case_id.str.startswith("py_").to_numpy()
        lo = S.byars_lower(g.observed, c)
        up = S.byars_upper(g.observed, c)
        close(lo[~py], g.expected_lower[~py], what=f"byars lower {c}")  # includes NA for x=1 @ 99.8%
        close(up[~py], g.expected_upper[~py], what=f"byars upper {c}")
        close_where_given(lo[py], g.expected_lower[py], what="py byars lower")
        rows += len(g)
    assert rows == len(df) == 9


@needs_ref
def test_rate_all_rows():
    df = ref("rate_byars_exact.csv")
    rows = 0
    for c in df.confidence.unique():
        m = (df.confidence == c).to_numpy()
        v, lo, up = S.rate_ci(df.numerator[m], df.denominator[m], c, df.multiplier[m])
        close(v, df.expected_value[m], what="rate value")
        close(lo, df.expected_lower[m], what="rate lower")
        close(up, df.expected_upper[m], what="rate upper")
        rows += int(m.sum())
    assert rows == len(df) == 40


@needs_ref
def test_derived_zero_edge_cases_all_rows():
    df = ref("derived_zero_edge_cases.csv")
    rows = 0
    for (method, c), g in df.groupby(["method", "confidence"]):
        if method == "wilson_proportion":
            v, lo, up = S.proportion_ci(g.numerator, g.denominator, c)
        else:
            lo, up = S.poisson_count_ci(g.numerator, c)
            v = g.numerator.to_numpy(dtype=float)
            # the same limits through rate_ci / isr with denominator / expected 1
            close(S.rate_ci(g.numerator, 1, c, 1)[1], g.expected_lower, what="rate_ci edge")
            close(S.isr(g.numerator, 1, c)[2], g.expected_upper, what="isr edge")
        close(v, g.expected_value, what=f"{method} value")
        close(lo, g.expected_lower, atol=1e-15, what=f"{method} lower")
        close(up, g.expected_upper, what=f"{method} upper")
        rows += len(g)
    assert rows == len(df) == 16


@needs_ref
@pytest.mark.parametrize("multiplier", [10000, 100000])
def test_dsr_all_rows(multiplier):
    inp = ref("dsr_inputs_ageband.csv")
    exp = ref("dsr_dobson.csv")
    exp = exp[exp.multiplier == multiplier].set_index("area")
    r95 = S.dsr_dobson(inp["count"], inp["pop"], inp["stdpop"], inp["area"], 0.95, multiplier)
    r998 = S.dsr_dobson(inp["count"], inp["pop"], inp["stdpop"], inp["area"], 0.998, multiplier)
    e = exp.loc[r95.groups]
    close(r95.total_count, e.total_count, what="total count")
    close(r95.value, e.expected_value, what="dsr")
    close(r95.lower, e.lower95, what="lower95")
    close(r95.upper, e.upper95, what="upper95")
    close(r998.lower, e.lower99_8, what="lower99.8")
    close(r998.upper, e.upper99_8, what="upper99.8")
    assert len(r95.groups) == len(exp) == 4
    # the ESP2013 constant is the standard population used by the multiarea dataset
    ma = inp[inp.dataset == "multiarea"]
    np.testing.assert_array_equal(ma.stdpop.to_numpy().reshape(-1, 19), np.tile(S.ESP2013, (3, 1)))


@needs_ref
def test_isr_all_rows():
    inp = ref("isr_inputs_ageband.csv")
    exp = ref("isr_byars_exact.csv")
    exp["dataset"] = exp.inputs.str.extract(r"dataset=(\w+)", expand=False)
    rows = 0
    for (ds, stat, mult), g in exp.groupby(["dataset", "statistic", "refvalue_or_multiplier"]):
        d = inp[inp.dataset == ds]
        groups = np.unique(d.area)
        e = g.set_index("area").loc[groups]
        observed = e.observed.to_numpy() if ds == "py_isr_obs" else None
        kw = dict(observed=observed, statistic=stat, refvalue=mult, multiplier=mult)
        args = (d["count"], d["pop"], d["refcount"], d["refpop"], d["area"])
        r95 = S.isr_from_strata(*args, confidence=0.95, **kw)
        r998 = S.isr_from_strata(*args, confidence=0.998, **kw)
        assert list(r95.groups) == list(groups)
        close(r95.observed, e.observed, what=f"{ds} observed")
        close(r95.expected, e.expected, what=f"{ds} expected")
        close(r95.value, e.expected_value, what=f"{ds} {stat} value")
        close(r95.lower, e.lower95, what=f"{ds} lower95")
        close(r95.upper, e.upper95, what=f"{ds} upper95")
        close_where_given(r998.lower, e.lower99_8, what=f"{ds} lower99.8")
        close_where_given(r998.upper, e.upper99_8, what=f"{ds} upper99.8")
        if stat == "rate":
            # the same through isr() with ref_rate scaling
            v, lo, _ = S.isr(e.observed, e.expected, 0.95, refvalue=e.ref_rate.to_numpy())
            close(v, e.expected_value, what="isr() rate scaling")
            close(lo, e.lower95, what="isr() rate scaling lower")
        rows += len(g)
    assert rows == len(exp) == 56
    assert {"err2_pop0", "py_isr_obs", "multiarea"} <= set(exp.dataset)


def _sii_case(inputs: pd.DataFrame, row: pd.Series, source: str, seed: int):
    g = inputs[inputs.case_id == row["case_id"]]
    areas = sorted(g.area.unique())

    def mat(col):
        return g.pivot(index="area", columns="quantile", values=col).loc[areas].to_numpy(dtype=float)

    kw = {}
    if source == "se":
        kw["se"] = mat("se")
    elif source == "cl":
        kw["lower_cl"], kw["upper_cl"] = mat("lower_cl"), mat("upper_cl")
    else:
        kw["count"] = mat("count")
    confs = [float(c) for c in str(row["confidence"]).split(";")]
    res = S.sii(mat("value"), mat("population"), value_type=int(row["value_type"]),
                transform=bool(row["transform"]), multiplier=float(row["multiplier"]),
                confidence=tuple(confs) if len(confs) > 1 else confs[0], seed=seed, **kw)
    return res, areas.index(row["area"]), len(confs)


@needs_ref
def test_sii_all_rows():
    inputs = ref("sii_inputs.csv")
    exp = ref("sii_expected.csv")
    det = mc = runs = 0
    for _, row in exp.iterrows():
        for source in row["se_source"].split("|"):
            res, i, k = _sii_case(inputs, row, source, seed=20240101)
            what = f"{row['case_id']} {row['area']} se from {source}"
            runs += 1
            for col in ("sii", "rii", "intercept"):
                if pd.notna(row[col]):
                    assert getattr(res, col)[i] == pytest.approx(row[col], rel=RTOL), f"{what} {col}"
                    det += 1
            for j in range(k):
                for col in ("sii_lower", "sii_upper", "rii_lower", "rii_upper"):
                    e = row[f"{col}_{j + 1}"]
                    if pd.notna(e):
                        got = getattr(res, col)[i] if k == 1 else getattr(res, col)[i, j]
                        assert got == pytest.approx(e, rel=MC_RTOL), f"{what} {col}_{j + 1}"
                        mc += 1
    print(f"SII reference runs={runs} deterministic={det} monte_carlo={mc}")
    assert runs == 38 and det == 88 and mc == 152


@needs_ref
def test_sii_crude_rate_proportion_matches_prop_case():
    """The contract's crude_rate SII (Wilson limits -> logit SE) reproduces prop_notransform."""
    inputs = ref("sii_inputs.csv")
    exp = ref("sii_expected.csv").set_index(["case_id", "area"])
    g = inputs[inputs.case_id == "prop_notransform"]
    areas = sorted(g.area.unique())
    x = g.pivot(index="area", columns="quantile", values="count").loc[areas].to_numpy(dtype=float)
    n = g.pivot(index="area", columns="quantile", values="population").loc[areas].to_numpy(dtype=float)
    res = S.sii_crude_rate_proportion(x, n)
    for i, a in enumerate(areas):
        e = exp.loc[("prop_notransform", a)]
        assert res.sii[i] == pytest.approx(e["sii"], rel=RTOL)
        assert res.rii[i] == pytest.approx(e["rii"], rel=RTOL)
        for col in ("sii_lower", "sii_upper", "rii_lower", "rii_upper"):
            assert getattr(res, col)[i] == pytest.approx(e[f"{col}_1"], rel=MC_RTOL)


@needs_ref
def test_funnel_proportion_limits_all_rows():
    inp = ref("funnel_proportion_inputs.csv")
    lim = ref("funnel_proportion_limits.csv")
    rows = 0
    subsets = {"all_inputs": inp, "inputs_with_denominator_lt_31000": inp[inp.denominator < 31000]}
    for variant, sub in subsets.items():
        lv = lim[lim.variant == variant]
        p = sub.numerator.sum() / sub.denominator.sum()
        assert p * 100 == pytest.approx(lv.baseline.iloc[0], rel=RTOL)
        f = S.funnel_limits_proportion(p, lv.population.to_numpy(), multiplier=100)
        # limits are given to 6 decimal places
        close(f.lower_95, lv.lower_2s_limit, atol=1e-6, what=f"{variant} lower 2s")
        close(f.upper_95, lv.upper_2s_limit, atol=1e-6, what=f"{variant} upper 2s")
        close(f.lower_998, lv.lower_3s_limit, atol=1e-6, what=f"{variant} lower 3s")
        close(f.upper_998, lv.upper_3s_limit, atol=1e-6, what=f"{variant} upper 3s")
        rows += len(lv)
    assert rows == len(lim) == 200


@needs_ref
def test_funnel_proportion_significance_all_rows():
    inp = ref("funnel_proportion_inputs.csv")
    p = inp.numerator.sum() / inp.denominator.sum()
    sig = S.funnel_significance_proportion(inp.numerator, inp.denominator, p)
    mismatch = inp[sig != inp.significance.to_numpy()]
    assert mismatch.empty, mismatch.head()
    assert len(inp) == 303 and set(sig) == {S.SIG_HIGH_001, S.SIG_HIGH_025, S.SIG_NOT, S.SIG_LOW_025,
                                             S.SIG_LOW_001}


@needs_ref
def test_funnel_ratio_all_rows():
    lim = ref("funnel_ratio_limits.csv")
    ex = S.funnel_ratio_exp_events(lim.observed_events)
    o = lim.observed_events.to_numpy(dtype=float)
    for field, col in zip(ex._fields, ("lower_2s", "upper_2s", "lower_3s", "upper_3s"), strict=True):
        e_events = lim[f"{col}_exp_events"].to_numpy()
        close(getattr(ex, field), e_events, rtol=1e-4, what=f"{col} exp events")
        close(o / getattr(ex, field) - 1, lim[f"{col}_count"], rtol=1e-4, what=f"{col} count")
        close(o / getattr(ex, field) * 100, lim[f"{col}_isr"], rtol=1e-4, what=f"{col} isr")
        # the inverse direction: limits at a given expected count recover O/E
        close(getattr(S.funnel_limits_ratio(e_events, "count"), field), lim[f"{col}_count"],
              rtol=1e-4, atol=1e-5, what=f"{col} count at E")
        close(getattr(S.funnel_limits_ratio(e_events, "isr"), field), lim[f"{col}_isr"], rtol=1e-4,
              what=f"{col} isr at E")
        close(getattr(S.funnel_limits_ratio(e_events), field), o / e_events, rtol=1e-4,
              what=f"{col} ratio at E")
    assert len(lim) == 100


@needs_ref
def test_funnel_ratio_significance_all_rows():
    inp = ref("funnel_ratio_inputs.csv")
    sig = S.funnel_significance_ratio(inp.obs, inp.expected)
    mismatch = inp[sig != inp.significance.to_numpy()]
    assert mismatch.empty, mismatch.head()
    assert len(inp) == 300


# ==================================================================================================
# Behaviour not covered by the reference files
# ==================================================================================================


def test_vectorised_shapes_and_scalars():
    lo, up = S.wilson_ci(np.arange(6).reshape(2, 3), 10)
    assert lo.shape == up.shape == (2, 3)
    v, lo, up = S.isr(5, 4.0)
    assert np.ndim(v) == 0 and isinstance(v, np.floating)


def test_dsr_group_ids_and_zero_population_band():
    counts = np.r_[np.full(19, 3.0), np.full(19, 3.0)]
    pops = np.r_[np.full(19, 100.0), np.full(19, 100.0)]
    pops[-1] = 0.0
    counts[-1] = 0.0  # empty band: zero rate, weight still counted
    res = S.dsr_dobson(counts, pops, np.tile(S.ESP2013, 2), np.repeat([7, 3], 19))
    assert list(res.groups) == [3, 7]
    assert res.value[1] == pytest.approx(3000.0)  # 3/100 in every band, ESP weights sum to 100000
    assert res.value[0] == pytest.approx(3000.0 * (1 - 1000 / 100000))
    counts[-1] = 2.0  # events with no population: rate undefined
    res = S.dsr_dobson(counts, pops, np.tile(S.ESP2013, 2), np.repeat([7, 3], 19))
    assert np.isnan(res.value[0]) and np.isfinite(res.value[1])


def test_isr_from_strata_missing_reference_rate_gives_nan():
    r = S.isr_from_strata([1, 2, 3, 4], [10, 10, 10, 0], [5, 5, 5, 5], [100, 0, 100, 0], ["a", "a", "b", "b"])
    assert np.isnan(r.expected[0]) and np.isnan(r.value[0])
    assert r.expected[1] == pytest.approx(0.5) and r.observed[1] == 7


def test_sii_missing_quintile_and_zero_cases():
    x = np.array([[10, 20, 30, 40, 50], [0, 20, 30, 40, 50], [10, 20, 30, 40, 50.0]])
    n = np.array([[100] * 5, [100] * 5, [100, 100, 0, 100, 100.0]])
    r = S.sii_crude_rate_proportion(x, n, repetitions=5000)
    assert r.sii[0] == pytest.approx(0.5, rel=1e-9)  # exact straight line 0.1..0.5 over x in (0, 1)
    assert r.rii[0] == pytest.approx(5.5 / 0.5, rel=1e-9)  # pred(1) = 0.55, pred(0) = 0.05
    assert np.isfinite(r.sii[1]) and np.isnan(r.sii_lower[1])  # 0 cases: logit SE infinite
    assert np.isnan(r.sii[2]) and np.isnan(r.rii_upper[2])  # unpopulated quintile


def test_sii_chunking_and_seed_reproducible():
    rng = np.random.default_rng(5)
    n = rng.integers(200, 2000, (7, 5)).astype(float)
    x = rng.binomial(n.astype(int), 0.2).astype(float)
    a = S.sii_crude_rate_proportion(x, n, repetitions=20000, seed=3)
    b = S.sii_crude_rate_proportion(x, n, repetitions=20000, seed=3, chunk_bytes=1)
    c = S.sii_crude_rate_proportion(x[2:4], n[2:4], repetitions=20000, seed=3)
    for f in a._fields:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        np.testing.assert_array_equal(getattr(a, f)[2:4], getattr(c, f))


def test_quantile_matrix_long_to_wide():
    groups, (m,) = S.quantile_matrix(["b", "a", "a", "b"], [1, 2, 1, 5], [1.0, 2.0, 3.0, 4.0])
    assert list(groups) == ["a", "b"]
    np.testing.assert_array_equal(m[0, :2], [3.0, 2.0])
    assert np.isnan(m[0, 2:]).all() and m[1, 0] == 1.0 and m[1, 4] == 4.0


def test_rate_difference_newcombe_published_example():
    # Newcombe (1998) Stat Med 17:873, example (a): 56/70 vs 48/80 -> 0.2000 (0.0524, 0.3339), method 10
    d, lo, up = S.rate_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert lo == pytest.approx(0.0524, abs=5e-5)
    assert up == pytest.approx(0.3339, abs=5e-5)
    # zero counts stay defined; bad denominators give NaN
    d, lo, up = S.rate_difference([0, 5], [10, 0], [0, 1], [20, 10])
    assert d[0] == 0 and lo[0] < 0 < up[0] and np.isnan([d[1], lo[1], up[1]]).all()


def test_rate_ratio_log_method():
    rr, lo, up = S.rate_ratio(20, 100, 10, 100, kind="rate")
    se = np.sqrt(1 / 20 + 1 / 10)
    assert rr == pytest.approx(2.0)
    assert lo == pytest.approx(2 * np.exp(-1.959963985 * se), rel=1e-9)
    assert up == pytest.approx(2 * np.exp(1.959963985 * se), rel=1e-9)
    rr, lo, up = S.rate_ratio(20, 100, 10, 100)  # proportions (Katz)
    se = np.sqrt(1 / 20 - 1 / 100 + 1 / 10 - 1 / 100)
    assert lo == pytest.approx(2 * np.exp(-1.959963985 * se), rel=1e-9)
    rr, lo, up = S.rate_ratio([0, 5], [10, 10], [5, 0], [10, 10])
    assert rr[0] == 0 and np.isnan(lo[0]) and np.isnan([rr[1], lo[1], up[1]]).all()


def test_compare_to_parent_labels():
    lab = S.compare_to_parent([0.2, 0.05, 0.08, np.nan], [0.3, 0.09, 0.12, 0.2], 0.1)
    assert list(lab) == ["higher", "lower", "similar", ""]
    assert lab.dtype.kind == "U"


def test_funnel_overdispersion():
    rng = np.random.default_rng(11)
    n = rng.integers(500, 20000, 400).astype(float)
    x = rng.binomial(n.astype(int), 0.15).astype(float)
    plain = S.funnel_limits_proportion(x.sum() / n.sum(), n)
    # no overdispersion: Winsorised phi is below 1 (about 0.68 expected for N(0,1) z-scores), so
    # tau2 = 0 and the additive limits are the plain funnel limits
    r = S.funnel_overdispersion(x, n)
    assert 0.4 < r.phi < 1.0 and r.tau2 == 0
    np.testing.assert_allclose(r.lower_95, plain.lower_95, rtol=1e-12)
    np.testing.assert_allclose(r.upper_998, plain.upper_998, rtol=1e-12)
    # overdispersed: area-level true rates vary
    p_i = np.clip(rng.normal(0.15, 0.02, n.size), 0.01, 0.99)
    x2 = rng.binomial(n.astype(int), p_i).astype(float)
    add = S.funnel_overdispersion(x2, n, method="additive")
    mul = S.funnel_overdispersion(x2, n, method="multiplicative")
    base = S.funnel_limits_proportion(add.target, n)
    assert add.phi > 2 and add.tau2 == pytest.approx(0.02**2, rel=0.5)
    assert np.all(add.upper_998 - add.lower_998 > base.upper_998 - base.lower_998)
    assert np.all(mul.upper_95 - mul.lower_95 > base.upper_95 - base.lower_95)
    # hand check of tau2 from the published formula
    s = np.sqrt(add.target * (1 - add.target) / n)
    w = 1 / s**2
    expect_tau2 = (n.size * add.phi - (n.size - 1)) / (w.sum() - (w**2).sum() / w.sum())
    assert add.tau2 == pytest.approx(expect_tau2, rel=1e-12)
    # ratio statistic (square-root transform); limits at chosen expected counts
    e = rng.uniform(5, 500, 300)
    o = rng.poisson(e * rng.gamma(20, 1 / 20, e.size)).astype(float)
    rr = S.funnel_overdispersion(o, e, statistic="ratio", at=np.array([10.0, 100.0]))
    assert rr.target == 1.0 and rr.phi > 1 and rr.lower_95.shape == (2,)
    assert rr.lower_95[0] < rr.lower_95[1] < 1 < rr.upper_95[1] < rr.upper_95[0]

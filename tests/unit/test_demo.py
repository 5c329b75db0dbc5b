"""pipeline.demo: the synthetic raw directory (input contract, seeded, calibrated, planted inequalities)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import demo
from pipeline.errors import PipelineError
from pipeline.schema import SOURCE_BY_STEM

PERIODS = [np.datetime64(d, "D").astype(np.int64) for d in ("2023-03-31", "2024-03-31", "2025-03-31")]
LIMIT = np.datetime64("2026-01-01", "D").astype(np.int64)
CODELIST_NAMES = ("depression", "depression_resolved", "hypertension", "hypertension_resolved", "smi", "smi_remission",
                  "systolic_bp", "diastolic_bp", "hba1c", "smi_health_check", "antidepressants")
DATE_COLS = {"patients": ("date_of_birth", "date_of_death"), "registrations": ("registered_from", "registered_to"),
             "events": ("date",)}
ETH_GROUP = {**dict.fromkeys("ABC", "White"), **dict.fromkeys("DEFG", "Mixed"), **dict.fromkeys("HJKL", "Asian"),
             **dict.fromkeys("MNP", "Black"), **dict.fromkeys("RS", "Other")}


def _read(raw: Path, stem: str) -> pd.DataFrame:
    """A parquet table with its date columns as integer days since 1970-01-01 (NaN where null)."""
    t = pq.read_table(raw / f"{stem}.parquet")
    cols = {name: (t[name].cast(pa.int32()) if name in DATE_COLS[stem] else t[name]) for name in t.column_names}
    return pa.table(cols).to_pandas()


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_small")
    demo.generate(out, n_patients=8_000, seed=7)
    return out


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_big")
    demo.generate(out, n_patients=50_000, seed=20240331)
    return out


# ------------------------------------------------------------------------------------------- shape


def test_files_exist_with_contract_columns(small):
    for stem in ("patients", "registrations", "events"):
        schema = pq.read_schema(small / f"{stem}.parquet")
        assert tuple(schema.names) == SOURCE_BY_STEM[stem].columns + SOURCE_BY_STEM[stem].optional_columns
        for field in schema:
            expected = pa.date32() if field.name in DATE_COLS[stem] else pa.float64() if field.name == "value" else pa.string()
            assert field.type == expected, (stem, field.name, field.type)
    for stem in ("practices", "deprivation", "neighbourhoods"):
        with open(small / f"{stem}.csv", newline="") as f:
            assert tuple(next(csv.reader(f))) == SOURCE_BY_STEM[stem].columns
    for name in CODELIST_NAMES:
        cl = _csv(small / "codelists" / f"{name}.csv")
        assert list(cl.columns) == ["code", "term"] and len(cl) >= 1
        assert cl["code"].str.fullmatch(r"\d{6,18}").all() and (cl["term"] != "").all()
    assert (small / "boundaries.geojson").is_file()
    assert "SYNTHETIC" in (small / "README.txt").read_text()


def test_codelists_are_disjoint_and_events_use_real_noise(small):
    lists = {n: set(_csv(small / "codelists" / f"{n}.csv")["code"]) for n in CODELIST_NAMES}
    names = list(lists)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not lists[a] & lists[b], (a, b)
    ev = _read(small, "events")
    in_lists = ev["code"].isin(set().union(*lists.values()))
    assert in_lists.any() and (~in_lists).any()          # diagnosis codes and noise codes
    assert (ev["code"] == "871731000000106").any()        # social prescribing referrals


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    demo.generate(a, n_patients=3_000, seed=11)
    demo.generate(b, n_patients=3_000, seed=11)
    demo.generate(c, n_patients=3_000, seed=12)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) >= 14
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for stem in ("patients", "registrations", "events"):
        assert (a / f"{stem}.parquet").read_bytes() != (c / f"{stem}.parquet").read_bytes()


def test_overwrites_only_its_own_files(tmp_path):
    """An earlier demo extract (its README.txt says so) is replaced, other files are kept; a folder holding an
    extract demo-data did not write is refused whole (tests/integration/test_cli_bad_input.py)."""
    (tmp_path / "keep.txt").write_text("mine")
    (tmp_path / "patients.parquet").write_text("old")
    with pytest.raises(PipelineError, match="already holds an extract"):
        demo.generate(tmp_path, n_patients=500, seed=1)
    assert (tmp_path / "patients.parquet").read_text() == "old"
    (tmp_path / "README.txt").write_text(demo.SYNTHETIC_HEADING + "\n(an earlier demo extract)\n")
    demo.generate(tmp_path, n_patients=500, seed=1)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert pq.read_table(tmp_path / "patients.parquet").num_rows == 500


def test_rejects_silly_sizes(tmp_path):
    with pytest.raises(PipelineError):
        demo.generate(tmp_path, n_patients=0)


# ------------------------------------------------------------------------------------- integrity


def test_dates_ids_and_references(small):
    pat, reg, ev = _read(small, "patients"), _read(small, "registrations"), _read(small, "events")
    assert len(pat) == 8_000
    assert pat["patient_id"].notna().all() and pat["patient_id"].is_unique
    for df, stem in ((pat, "patients"), (reg, "registrations"), (ev, "events")):
        for col in DATE_COLS[stem]:
            assert (df[col].dropna() <= LIMIT).all(), col
    assert pat["date_of_birth"].notna().all()
    dob = pat["date_of_birth"].to_numpy().astype("datetime64[D]")
    assert (dob.astype("datetime64[M]").astype("datetime64[D]") == dob).all()      # first of the month
    ids = set(pat["patient_id"])
    assert reg["patient_id"].isin(ids).all() and ev["patient_id"].isin(ids).all()
    assert set(pat["patient_id"]) == set(reg["patient_id"])                          # everyone has a spell
    practices = _csv(small / "practices.csv")
    assert practices["practice_code"].is_unique and len(practices) == 35
    assert reg["practice_code"].isin(set(practices["practice_code"])).all()
    assert (practices["icb_code"] == "QXX").all() and practices["pcn_code"].nunique() == 6
    closed = reg["registered_to"].notna()
    assert (reg.loc[closed, "registered_to"] >= reg.loc[closed, "registered_from"]).all()
    assert ev["code"].notna().all() and (ev["code"] != "").all()
    assert set(pat["sex"]) <= {"F", "M", "I", "U"}
    assert set(pat["ethnicity"].dropna()) <= set("ABCDEFGHJKLMNPRS") | {"Z", "99"}
    # nothing recorded after death; the born-after-a-period, deaths and spells ending on period dates exist
    died = pat.set_index("patient_id")["date_of_death"]
    assert (ev["date"].to_numpy() <= died.reindex(ev["patient_id"]).fillna(LIMIT).to_numpy()).all()
    assert pat["date_of_death"].notna().sum() > 50
    assert reg["registered_to"].isin(PERIODS).sum() > 0


def test_registration_edge_cases_present(big):
    pat, reg = _read(big, "patients"), _read(big, "registrations")
    assert pat["date_of_death"].isin(PERIODS).sum() > 0
    assert reg["registered_to"].isin(PERIODS).sum() > 10
    assert reg["registered_from"].isin(PERIODS).sum() > 10
    assert (pat["date_of_birth"] > PERIODS[-1]).sum() > 0
    r = reg.sort_values(["patient_id", "registered_from"])
    nxt_from = r.groupby("patient_id")["registered_from"].shift(-1)
    overlap = nxt_from.notna() & (r["registered_to"].isna() | (r["registered_to"] >= nxt_from))
    assert overlap.sum() > 10
    assert (reg["registered_to"].isna()).mean() > 0.7


def test_geography(small):
    dep = _csv(small / "deprivation.csv")
    nb = _csv(small / "neighbourhoods.csv")
    assert dep["lsoa_code"].is_unique and dep["lsoa_code"].str.fullmatch(r"E01\d{6}").all()
    rank, dec, score = dep["imd_rank"].astype(int), dep["imd_decile"].astype(int), dep["imd_score"].astype(float)
    assert rank.is_unique and rank.between(1, 32_844).all()
    upper = np.floor(np.arange(1, 11) * 32_844 / 10)            # last rank of each national decile
    assert (dec.to_numpy() == np.searchsorted(upper, rank.to_numpy()) + 1).all()
    order = np.argsort(rank.to_numpy())
    assert (np.diff(score.to_numpy()[order]) <= 0).all()                   # more deprived = higher score
    assert (dec <= 2).mean() > 0.15 and dec.mean() < 5.5                    # more deprived than England
    assert set(nb["lsoa_code"]) == set(dep["lsoa_code"])
    assert 20 <= nb["neighbourhood_code"].nunique() <= 30
    assert nb.groupby("neighbourhood_code").size().min() >= 3
    gj = json.loads((small / "boundaries.geojson").read_text())
    props = [f["properties"] for f in gj["features"]]
    assert {p["lsoa_code"] for p in props} == set(dep["lsoa_code"])
    lsoa_nb = dict(zip(nb["lsoa_code"], nb["neighbourhood_code"], strict=True))
    assert all(lsoa_nb[p["lsoa_code"]] == p["neighbourhood_code"] for p in props)
    assert all(f["geometry"]["type"] == "Polygon" for f in gj["features"])
    pat = _read(small, "patients")
    share_empty = pat["lsoa_code"].isna().mean()
    share_outside = (pat["lsoa_code"].notna() & ~pat["lsoa_code"].isin(set(dep["lsoa_code"]))).mean()
    assert 0.004 < share_empty < 0.02 and 0.001 < share_outside < 0.012


# ----------------------------------------------------------------------------------- calibration


def _population(raw: Path, d: int, min_age: int) -> pd.DataFrame:
    """Population on date d (DESIGN.md definitions): one row per patient with practice, sex, age, ethnicity."""
    pat, reg = _read(raw, "patients"), _read(raw, "registrations")
    cov = reg[(reg["registered_from"] <= d) & (reg["registered_to"].isna() | (reg["registered_to"] >= d))]
    cov = cov.sort_values(["patient_id", "registered_from", "practice_code"]).drop_duplicates("patient_id", keep="last")
    df = cov[["patient_id", "practice_code"]].merge(pat, on="patient_id")
    df = df[df["date_of_death"].isna() | (df["date_of_death"] > d)]
    born = df["date_of_birth"].to_numpy().astype("datetime64[D]").astype(object)
    on = np.datetime64(int(d), "D").astype(object)
    df = df.assign(age=[on.year - b.year - ((on.month, on.day) < (b.month, b.day)) for b in born])
    practices = _csv(raw / "practices.csv")[["practice_code", "pcn_code"]]
    dep = _csv(raw / "deprivation.csv")[["lsoa_code", "imd_decile"]]
    df = df.merge(practices, on="practice_code").merge(dep, on="lsoa_code", how="left")
    df["eth_group"] = df["ethnicity"].map(ETH_GROUP).fillna("Unknown")
    return df[(df["age"] >= min_age) & (df["date_of_birth"] <= d)]


def _cases(raw: Path, d: int, condition: str, resolved: str) -> set:
    ev = _read(raw, "events")
    ev = ev[ev["date"] <= d]
    dx = set(_csv(raw / "codelists" / f"{condition}.csv")["code"])
    rs = set(_csv(raw / "codelists" / f"{resolved}.csv")["code"])
    last_dx = ev[ev["code"].isin(dx)].groupby("patient_id")["date"].max()
    last_rs = ev[ev["code"].isin(rs)].groupby("patient_id")["date"].max().reindex(last_dx.index)
    return set(last_dx.index[last_rs.isna() | (last_dx > last_rs)])


def _rate(pop: pd.DataFrame, cases: set, mask=None) -> float:
    sel = pop if mask is None else pop[mask]
    return float(sel["patient_id"].isin(cases).mean())


def test_depression_prevalence_and_planted_gap(big):
    rates = {}
    for k, d in enumerate(PERIODS):
        pop = _population(big, d, 18)
        cases = _cases(big, d, "depression", "depression_resolved")
        rates[k] = overall = _rate(pop, cases)
        assert 0.11 < overall < 0.16, (k, overall)
        if k in (0, 2):
            assert _rate(pop, cases, pop["sex"] == "F") > 1.3 * _rate(pop, cases, pop["sex"] == "M")
            q1 = pop["imd_decile"].astype(float) <= 2
            q5 = pop["imd_decile"].astype(float) >= 9
            assert _rate(pop, cases, q1) > _rate(pop, cases, q5)
        for pcn in (demo.PLANTED_DEP_IMPROVING, demo.PLANTED_DEP_FLAT):
            in_pcn = pop["pcn_code"] == pcn
            black = _rate(pop, cases, in_pcn & (pop["eth_group"] == "Black"))
            others = _rate(pop, cases, in_pcn & (pop["eth_group"] != "Black"))
            if k == 0 or pcn == demo.PLANTED_DEP_FLAT:
                assert black < 0.75 * others, (k, pcn, black, others)
        if k == 0:
            black_elsewhere = ~pop["pcn_code"].isin([demo.PLANTED_DEP_IMPROVING, demo.PLANTED_DEP_FLAT]) & (
                pop["eth_group"] == "Black")
            assert _rate(pop, cases, black_elsewhere) > 0.65 * overall
            central0 = _rate(pop, cases, (pop["pcn_code"] == demo.PLANTED_DEP_IMPROVING) & (pop["eth_group"] == "Black"))
        if k == 2:
            central2 = _rate(pop, cases, (pop["pcn_code"] == demo.PLANTED_DEP_IMPROVING) & (pop["eth_group"] == "Black"))
            assert central2 > 1.4 * central0                       # the improving PCN improves
    assert rates[0] < rates[2]


def test_hypertension_smi_and_outlier(big):
    d = PERIODS[2]
    pop = _population(big, d, 0)
    hyp = _cases(big, d, "hypertension", "hypertension_resolved")
    overall = _rate(pop, hyp)
    assert 0.11 < overall < 0.18
    assert _rate(pop, hyp, pop["age"] < 40) < 0.02
    assert 0.22 < _rate(pop, hyp, pop["age"].between(60, 69)) < 0.42
    assert _rate(pop, hyp, pop["age"] >= 80) > 0.45
    dec = pop["imd_decile"].astype(float)
    assert _rate(pop, hyp, dec <= 2) < 0.85 * _rate(pop, hyp, dec.between(3, 4))     # planted under-recording
    smi = _cases(big, d, "smi", "smi_remission")
    assert 0.006 < _rate(pop, smi) < 0.014
    assert _rate(pop, smi, pop["eth_group"] == "Black") > 1.5 * _rate(pop, smi, pop["eth_group"] == "White")
    adults = _population(big, d, 18)
    dep = _cases(big, d, "depression", "depression_resolved")
    outlier = adults["practice_code"] == demo.OUTLIER_PRACTICE
    assert outlier.sum() > 200
    assert _rate(adults, dep, outlier) < 0.8 * _rate(adults, dep, ~outlier)


def test_population_mix(big):
    pat = _read(big, "patients")
    eth = pat["ethnicity"]
    missing = eth.isna() | eth.isin(["Z", "99"])
    assert 0.07 < missing.mean() < 0.12
    share = eth[~missing].map(ETH_GROUP).value_counts(normalize=True)
    assert 0.75 < share["White"] < 0.86
    assert 0.06 < share["Asian"] < 0.13
    assert 0.03 < share["Black"] < 0.08
    assert 0.02 < share["Mixed"] < 0.045
    assert 0.012 < share["Other"] < 0.035
    assert 0.0002 < pat["sex"].isin(["I", "U"]).mean() < 0.006
    assert 0.47 < (pat["sex"] == "F").mean() < 0.53
    age = (np.datetime64("2025-03-31", "D").astype(np.int64) - pat["date_of_birth"]) / 365.25
    assert 0.17 < (age < 18).mean() < 0.25
    assert 0.15 < (age >= 65).mean() < 0.23
    assert (age >= 90).mean() > 0.005


# ------------------------------------------------------------------------------------------- readings (indicators)


def test_readings_have_values_and_planted_indicator_gaps(big):
    ev = _read(big, "events")
    lists = {n: set(_csv(big / "codelists" / f"{n}.csv")["code"]) for n in CODELIST_NAMES}
    systolic = ev[ev["code"].isin(lists["systolic_bp"])]
    assert systolic["value"].notna().all() and systolic["value"].between(60, 260).all()
    assert ev.loc[ev["code"].isin(lists["diastolic_bp"]), "value"].notna().all()
    assert ev.loc[ev["code"].isin(lists["hba1c"]), "value"].between(20, 150).all()
    assert ev.loc[ev["code"].isin(lists["hypertension"] | lists["antidepressants"]), "value"].isna().all()
    # two systolic readings on one day happen (the lowest counts)
    assert systolic.duplicated(["patient_id", "date"]).any()
    pat = _read(big, "patients")
    dep = _csv(big / "deprivation.csv")
    quintile = pat.set_index("patient_id")["lsoa_code"].map(
        dict(zip(dep["lsoa_code"], (dep["imd_decile"].astype(int) + 1) // 2)))
    hyp = set(ev.loc[ev["code"].isin(lists["hypertension"]), "patient_id"])
    latest = systolic[systolic["patient_id"].isin(hyp) & (systolic["date"] <= PERIODS[2])].sort_values("date")
    latest = latest.groupby("patient_id")["value"].last()
    at_target = (latest <= 140).groupby(quintile.reindex(latest.index).fillna(0).to_numpy()).mean()
    assert at_target[1] < at_target[[2, 3, 4, 5]].min() - 0.05      # planted: lower control in quintile 1
    # raised readings without a diagnosis are concentrated in one neighbourhood
    nbh = _csv(big / "neighbourhoods.csv")
    hood = pat.set_index("patient_id")["lsoa_code"].map(dict(zip(nbh["lsoa_code"], nbh["neighbourhood_name"])))
    high = systolic[(systolic["value"] >= 140) & ~systolic["patient_id"].isin(hyp)]
    repeat = high.groupby("patient_id")["date"].nunique()
    repeat = repeat[repeat >= 2].index
    share = hood.reindex(repeat).value_counts(normalize=True)
    assert share.index[0] == demo.HIGH_BP_NEIGHBOURHOOD

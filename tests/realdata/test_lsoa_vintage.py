"""2021-vintage LSOA codes beside England's IoD 2019 file (2011 LSOAs), with the real ONS 2011 -> 2021 lookup.

The demo extract's made-up LSOAs are given real Birmingham 2021 LSOA codes (every new code from a split or a merge
first, then unchanged ones); the deprivation file is MHCLG's IoD 2019 for all of England (32,844 LSOAs). `check`
must name the mismatch without a lookup; with `[input] lsoa_lookup` the Unknown quintile must shrink back to the
truly unknown (patients with no LSOA or one outside England's files: the same as the demo extract's own).
Reads ../shared/realdata; skips when it is absent.
"""
from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest
from conftest import REPO_ROOT, run_cli, run_pipeline

REAL = REPO_ROOT.parent / "shared" / "realdata"
LOOKUP = REAL / "mapping" / "LSOA_(2011)_to_LSOA_(2021)_to_Local_Authority_District_(2022)_Lookup_for_England_and_Wales.csv"
IOD2019 = REAL / "imd2019" / "imd_england_lsoa.csv"
pytestmark = pytest.mark.skipif(not (LOOKUP.is_file() and IOD2019.is_file()), reason="../shared/realdata is not available")


def _unknown(processed) -> list[int]:
    """Registered patients (all ages) in the Unknown IMD quintile, per period (the population behind every
    prevalence row with imd_quintile Unknown)."""
    with duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True) as con:
        return [r[0] for r in con.execute("""select count(*) from int_patients_registered_on_date
            where imd_quintile = 'Unknown' group by period order by period""").fetchall()]


def test_2021_lsoas_with_iod_2019_are_reported_and_bridged_by_the_ons_lookup(tmp_path):
    from pipeline.adapters import read_iod2019_lsoa

    assert run_cli("demo-data", "--out", tmp_path / "demo", "--patients", 3000, "--seed", 5)[0] == 0
    raw = tmp_path / "raw"
    shutil.copytree(tmp_path / "demo", raw)
    lookup = pd.read_csv(LOOKUP, dtype=str)
    brum = lookup[lookup["LAD22CD"] == "E08000025"]
    new = sorted(set(brum.loc[brum["CHGIND"] != "U", "LSOA21CD"]) - set(lookup["F_LSOA11CD"]))
    same = sorted(set(brum.loc[brum["CHGIND"] == "U", "LSOA21CD"]))
    demo_codes = sorted(pd.read_csv(raw / "deprivation.csv", dtype=str)["lsoa_code"])
    real_codes = (new + same)[: len(demo_codes)]
    to_real = dict(zip(demo_codes, real_codes))
    pats = pd.read_parquet(raw / "patients.parquet")
    pats["lsoa_code"] = pats["lsoa_code"].map(lambda c: to_real.get(c, c))
    pats.to_parquet(raw / "patients.parquet", index=False)
    nb = pd.read_csv(raw / "neighbourhoods.csv", dtype=str)
    nb["lsoa_code"] = nb["lsoa_code"].map(to_real)
    nb.to_csv(raw / "neighbourhoods.csv", index=False)
    read_iod2019_lsoa(IOD2019).data.to_csv(raw / "deprivation.csv", index=False)
    (raw / "lookups").mkdir()
    shutil.copyfile(LOOKUP, raw / "lookups" / LOOKUP.name)

    code, out, err = run_cli("check", "--raw", raw)
    assert code == 0, err
    lsoa = out[out.index("\nLSOAs: "):].strip().splitlines()
    assert lsoa[1] == ("  the deprivation file has 32,844 LSOAs: 2011 LSOAs, as IoD 2019 (judged from England's code "
                       "ranges; a configured lookup makes it exact)")
    n_new = len(new)
    assert lsoa[2].startswith("  warning: likely cause: ") and f"patients in {n_new} LSOAs have 2021 LSOA codes with an IoD 2019 " \
        "file (2011 LSOAs): use IoD 2025, or the ONS 2011->2021 lookup (lsoa_lookup under [input])" in lsoa[2]
    cfg = tmp_path / "lookup.toml"
    cfg.write_text((REPO_ROOT / "pipeline" / "default.toml").read_text()
                   + f'\n[input]\nlsoa_lookup = "lookups/{LOOKUP.name}"\n')
    code, out2, err = run_cli("check", "--raw", raw, "--config", cfg)
    assert code == 0, err
    assert "  the deprivation file has 32,844 LSOAs: 2011 LSOAs, as IoD 2019" in out2.splitlines()

    runs = {}
    for name, config in (("plain", None), ("lookup", cfg)):
        code, _, err = run_pipeline(raw, tmp_path / f"p_{name}", tmp_path / "r", config, stages=("ingest", "transform"))
        assert code == 0, err
        runs[name] = _unknown(tmp_path / f"p_{name}")
    # truly unknown: no LSOA, or one of the demo's made-up codes outside the area (not given a real code)
    with duckdb.connect(str(tmp_path / "p_plain" / "warehouse.duckdb"), read_only=True) as con:
        con.register("real_codes", pd.DataFrame({"code": real_codes}))
        runs["demo"] = [r[0] for r in con.execute("""select count(*) from int_patients_registered_on_date
            where lsoa_code is null or lsoa_code not in (select code from real_codes)
            group by period order by period""").fetchall()]
    assert runs["lookup"] == runs["demo"]
    assert all(p > d for p, d in zip(runs["plain"], runs["demo"]))
    print(f"\nreal lookup, {n_new} new 2021 LSOAs of {len(real_codes)}: Unknown quintile (registered patients, all ages, per period) "
          f"without lookup {runs['plain']}, with lookup {runs['lookup']}, truly unknown {runs['demo']}\n"
          + "\n".join(lsoa))

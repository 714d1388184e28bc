"""Multi-site studies: sites on cases and readers, the [sites] design table, and the allocation's site invariants."""

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study_app.allocation import AllocationError, CaseSlot, ReaderSlot, allocate
from study_app.designs import DesignError, load_design, parse_design, shipped_design_path
from study_app.services.errors import InvalidInput
from study_app.services.roster import parse_roster

CHEXONE_TEXT = shipped_design_path("chexone").read_text()
CROSSOVER_TEXT = shipped_design_path("crossover_washout").read_text()


def with_sites(text, table):
    return parse_design(text + "\n[sites]\n" + table + "\n")


def two_site_cohort(n_a, n_b, mc_every=2):
    return ([CaseSlot(f"a{i:03d}", i % mc_every == 0, "site_a") for i in range(n_a)]
            + [CaseSlot(f"b{i:03d}", i % mc_every == 0, "site_b") for i in range(n_b)])


def two_site_roster(roles_a, roles_b):
    """roles_x: role -> number of readers of that role at site x."""
    return ([ReaderSlot(f"a_{role}{i}", role, "site_a") for role, n in roles_a.items() for i in range(n)]
            + [ReaderSlot(f"b_{role}{i}", role, "site_b") for role, n in roles_b.items() for i in range(n)])


def canonical(allocation):
    return [(p.reader_key, p.case_key, p.arm_key, p.position, p.source_index, p.a_source_index, p.reading_session)
            for p in allocation.assignments]


# ---------------------------------------------------------------- the design table


def test_design_reads_the_sites_table():
    design = with_sites(CHEXONE_TEXT, 'mode = "crossed"')
    assert (design.sites.mode, design.sites.balance) == ("crossed", True)
    assert with_sites(CHEXONE_TEXT, 'mode = "crossed"\nbalance = false').sites.balance is False
    assert with_sites(CHEXONE_TEXT, 'mode = "own"').sites.mode == "own"
    assert parse_design(CHEXONE_TEXT).sites is None


@pytest.mark.parametrize("table, message", [
    ('mode = "mixed"', r'sites\.mode: expected "own" .* or "crossed" .*got \'mixed\''),
    ("balance = true", r"sites: missing required key 'mode'"),
    ('mode = "crossed"\nbalance = "yes"', r"sites\.balance: expected true or false, got str"),
    ('mode = "own"\nbalance = true', r'sites\.balance: only for mode = "crossed"'),
    ('mode = "own"\nstrata = 2', r"sites: unknown key\(s\) strata"),
    ("mode = 1", r"sites\.mode: expected text, got int"),
])
def test_design_refuses_a_bad_sites_table_naming_the_key(table, message):
    with pytest.raises(DesignError, match=message):
        with_sites(CHEXONE_TEXT, table)


# ---------------------------------------------------------------- the readers CSV


def test_readers_csv_carries_a_site_and_refuses_a_bad_one_by_row_and_column():
    entries = parse_roster("reader_id,role,site\nr1,resident,site_a\nr2,resident,\n")
    assert [(e.reader_key, e.site) for e in entries] == [("r1", "site_a"), ("r2", None)]
    with pytest.raises(InvalidInput, match=r"readers row 2, column site: 'site b' must be letters"):
        parse_roster("reader_id,role,site\nr1,resident,site_a\nr2,resident,site b\n")


# ---------------------------------------------------------------- allocation refusals


def test_sites_design_refuses_a_reader_or_case_without_a_site():
    design = with_sites(CHEXONE_TEXT, 'mode = "own"')
    readers = two_site_roster({"resident": 2, "attending": 3, "radiologist": 2}, {"resident": 2, "attending": 3, "radiologist": 2})
    cases = two_site_cohort(8, 8)
    with pytest.raises(AllocationError, match=r"\[sites\]: reader 'x' has no site"):
        allocate(design, cases, [*readers, ReaderSlot("x", "resident")], 1)
    with pytest.raises(AllocationError, match=r"\[sites\]: case 'z' has no site"):
        allocate(design, [*cases, CaseSlot("z", False)], readers, 1)


def test_own_sites_refuses_a_site_short_of_readers_or_cases_naming_it():
    design = with_sites(CHEXONE_TEXT, 'mode = "own"')
    cases = two_site_cohort(8, 8)
    with pytest.raises(AllocationError, match=r"\[sites\] mode = \"own\": site 'site_b' is short of readers: arm "
                                              r"'attending_edit_resident'.*no reader of role 'attending'"):
        allocate(design, cases, two_site_roster({"resident": 2, "attending": 3, "radiologist": 2}, {"resident": 2, "radiologist": 2}), 1)
    readers = [*two_site_roster({"resident": 2, "attending": 3, "radiologist": 2}, {"resident": 2, "attending": 3, "radiologist": 2}),
               ReaderSlot("c_res", "resident", "site_c")]
    with pytest.raises(AllocationError, match=r"site 'site_c' is short of cases"):
        allocate(design, cases, readers, 1)
    # reasoning_review asks 2 readers per case: one radiologist at a site cannot give it.
    with pytest.raises(AllocationError, match=r"arm 'reasoning_review' asks 2 readers per case but role 'radiologist' "
                                              r"has only 1 reader\(s\) at site 'site_b'"):
        allocate(design, cases, two_site_roster({"resident": 2, "attending": 3, "radiologist": 2},
                                                {"resident": 2, "attending": 3, "radiologist": 1}), 1)


def test_crossed_sites_refuses_a_site_short_of_cases_for_every_reader_naming_it():
    design = with_sites(CHEXONE_TEXT, 'mode = "crossed"')
    readers = two_site_roster({"resident": 3, "attending": 3, "radiologist": 2},
                              {"resident": 3, "attending": 3, "radiologist": 2})
    with pytest.raises(AllocationError, match=r"\[sites\] mode = \"crossed\" with balance: site 'site_b' is short of "
                                              r"cases: arm '\w+' has 2 of its case\(s\)"):
        allocate(design, two_site_cohort(30, 2), readers, 1)
    # Without balance the same study is allocated (sites are then only recorded).
    unbalanced = with_sites(CHEXONE_TEXT, 'mode = "crossed"\nbalance = false')
    assert allocate(unbalanced, two_site_cohort(30, 2), readers, 1).assignments


# ---------------------------------------------------------------- allocation invariants, as properties

DESIGNS = {
    "chexone": CHEXONE_TEXT,
    "crossover": CROSSOVER_TEXT,
}


def arm_site_loads(allocation, arm_key, site_of, readers):
    counts = Counter((p.reader_key, site_of[p.case_key]) for p in allocation.assignments if p.arm_key == arm_key)
    return counts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(sorted(DESIGNS)),
    n_a=st.integers(4, 14), n_b=st.integers(4, 14),
    res_a=st.integers(2, 4), res_b=st.integers(2, 4), att_a=st.integers(3, 4), att_b=st.integers(3, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_own_sites_never_give_a_reader_another_sites_case(base, n_a, n_b, res_a, res_b, att_a, att_b, seed):
    design = with_sites(DESIGNS[base], 'mode = "own"')
    cases = two_site_cohort(n_a, n_b)
    readers = two_site_roster({"resident": res_a, "attending": att_a, "radiologist": 2},
                              {"resident": res_b, "attending": att_b, "radiologist": 2})
    # Every study drawn here can be met (each site has readers enough for the designs' overlaps): no refusal.
    allocation = allocate(design, cases, readers, seed)
    site_of_case = {c.case_key: c.site for c in cases}
    site_of_reader = {r.reader_key: r.site for r in readers}
    role_of = {r.reader_key: r.role for r in readers}
    assert all(site_of_case[p.case_key] == site_of_reader[p.reader_key] for p in allocation.assignments)
    for arm in design.arms:
        rows = [p for p in allocation.assignments if p.arm_key == arm.key]
        per_case = Counter(p.case_key for p in rows)
        assert sorted(per_case) == sorted(allocation.arm_cases[arm.key])  # every case of the arm is read
        for site in ("site_a", "site_b"):
            site_readers = [r for r, s in site_of_reader.items() if s == site and role_of[r] == arm.role]
            if not arm.all_readers:
                assert {n for c, n in per_case.items() if site_of_case[c] == site} <= {arm.readers_per_case}
            else:
                assert {n for c, n in per_case.items() if site_of_case[c] == site} <= {len(site_readers)}
            loads = Counter(p.reader_key for p in rows)
            spread = [loads.get(r, 0) for r in site_readers]
            assert max(spread) - min(spread) <= 1  # balanced within the site
    assert canonical(allocate(design, cases, readers, seed)) == canonical(allocation)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_a=st.integers(6, 20), n_b=st.integers(6, 20),
    res_a=st.integers(1, 3), res_b=st.integers(1, 3), att_a=st.integers(3, 4), att_b=st.integers(0, 2),
    seed=st.integers(0, 2**31 - 1),
)
def test_crossed_sites_balance_each_readers_reads_of_every_site_within_one(n_a, n_b, res_a, res_b, att_a, att_b, seed):
    design = with_sites(CHEXONE_TEXT, 'mode = "crossed"')
    cases = two_site_cohort(n_a, n_b)
    readers = two_site_roster({"resident": res_a, "attending": att_a, "radiologist": 2},
                              {"resident": res_b, "attending": att_b, "radiologist": 0})
    # Every study drawn here can be met (each site has at least 6 cases, more reads than readers): no refusal.
    allocation = allocate(design, cases, readers, seed)
    site_of = {c.case_key: c.site for c in cases}
    for arm in design.arms:
        role_readers = [r.reader_key for r in readers if r.role == arm.role]
        rows = [p for p in allocation.assignments if p.arm_key == arm.key]
        assert set(Counter(p.case_key for p in rows).values()) == {arm.readers_per_case}
        loads = Counter(p.reader_key for p in rows)
        assert max(loads[r] for r in role_readers) - min(loads[r] for r in role_readers) <= 1
        for site in ("site_a", "site_b"):
            site_loads = [sum(1 for p in rows if p.reader_key == r and site_of[p.case_key] == site)
                          for r in role_readers]
            assert min(site_loads) >= 1  # every reader reads every site
            assert max(site_loads) - min(site_loads) <= 1
    assert canonical(allocate(design, cases, readers, seed)) == canonical(allocation)


def test_a_design_without_sites_allocates_as_before_whatever_sites_the_slots_carry():
    design = load_design(shipped_design_path("chexone"))
    cases = two_site_cohort(10, 10)
    readers = two_site_roster({"resident": 2, "attending": 3, "radiologist": 2}, {"resident": 2, "attending": 3, "radiologist": 2})
    bare_cases = [CaseSlot(c.case_key, c.has_mc_item) for c in cases]
    bare_readers = [ReaderSlot(r.reader_key, r.role) for r in readers]
    assert canonical(allocate(design, cases, readers, 7)) == canonical(allocate(design, bare_cases, bare_readers, 7))


# ---------------------------------------------------------------- from the shipped design to an analysed report


def two_site_cohort_dir(tmp_path):
    from cohorts.demo import build_demo_cohort

    from study_app.demo import DEMO_SITES, write_demo_readers

    cohort = tmp_path / "cohort"
    manifest = build_demo_cohort(cohort, n_cases=12, seed=0, large_case_size=(64, 80), sites=DEMO_SITES,
                                 manifest_name="manifest_sites.csv")
    return manifest, write_demo_readers(cohort / "readers_sites.csv", DEMO_SITES)


def test_the_demo_roster_and_cohort_carry_two_sites(tmp_path):
    from cohorts import load_manifest

    manifest, readers = two_site_cohort_dir(tmp_path)
    cases = load_manifest(manifest).cases
    assert Counter(c.site for c in cases) == {"site_a": 6, "site_b": 6}
    roster = parse_roster(readers.read_text())
    # Each role's readers are dealt to the sites in turn, so both sites have readers of every role.
    assert {(e.role, e.site) for e in roster} == {(r, s) for r in ("resident", "attending", "radiologist")
                                                  for s in ("site_a", "site_b")}


def test_a_two_site_study_goes_from_the_shipped_design_to_an_analysed_report_without_code(tmp_path, monkeypatch):
    """`study create --design two_site` on the demo's two-site cohort and roster, `drafts import`, `progress`,
    `study rehearse`, `export`: the export carries the sites, progress reports by site, and the analysed report
    names both sites and fits the site in the mixed model."""
    import json

    import pandas as pd
    from click.testing import CliRunner

    from study_app.cli import main

    manifest, readers = two_site_cohort_dir(tmp_path)
    monkeypatch.setenv("READERSTUDY_DB", f"sqlite:///{tmp_path / 'study.sqlite'}")
    monkeypatch.delenv("READERSTUDY_VLLM_API_KEY", raising=False)
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("study", "create", "two", "--design", "two_site", "--cohort", str(manifest), "--readers", str(readers),
        "--seed", "5")
    run("drafts", "import", "two")
    progress = run("progress", "two")
    assert "by site (of the case, of the reader):" in progress
    assert "site_a" in progress and "site_b" in progress
    out = run("study", "rehearse", "two", "--out", str(tmp_path / "r"))
    assert "primary endpoint on the fake data: resident_drafting_time: " in out
    export = tmp_path / "r" / "export"
    cases = pd.read_csv(export / "cases.csv")
    readers_table = pd.read_csv(export / "readers.csv")
    assert Counter(cases["site"]) == {"site_a": 6, "site_b": 6}
    assert set(readers_table["site"]) == {"site_a", "site_b"}
    assert json.loads((export / "export_meta.json").read_text())["sites"] == {"mode": "crossed", "balance": True}
    # Crossed and balanced: every reader of the resident arms read cases of both sites.
    reads = pd.read_csv(export / "assignments.csv").merge(cases[["case_id", "site"]], on="case_id")
    per_reader = reads.groupby(["arm", "reader_id"])["site"].nunique()
    assert (per_reader.loc[["resident_scratch", "resident_edit_model"]] == 2).all()
    report = (tmp_path / "r" / "report" / "report.html").read_text()
    assert "Durations by site of the case" in report and "site_a" in report and "site_b" in report
    results = json.loads((tmp_path / "r" / "report" / "results.json").read_text())
    assert results["sites"]["sites"] == ["site_a", "site_b"]
    mixed = results["duration"]["resident"]["comparisons"]["write_vs_edit_model"]["mixed_model"]
    assert set(mixed["site_effects"]) == {"site_b"}


def test_the_two_site_demo_builds_from_the_shipped_design(tmp_path):
    from study_app.demo import build_demo_study
    from study_app.services.actors import SYSTEM
    from study_app.services.database import open_database
    from study_app.services.progress import study_progress

    two_site_cohort_dir(tmp_path)  # the sited manifest the demo would build (with its large case made small)
    db = open_database(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    try:
        result = build_demo_study(db, cohort_dir=tmp_path / "cohort", design="two_site")
        assert result.created and "demo-two_site" in result.message
        by_site = study_progress(db, SYSTEM, "demo-two_site").by_site
        assert set(by_site["case_site"]) == set(by_site["reader_site"]) == {"site_a", "site_b"}
    finally:
        db.dispose()


def test_export_round_trip_carries_the_sites_in_every_format(tmp_path):
    import json

    import pandas as pd

    from analysis import load_tables
    from study_app.services.actors import SYSTEM
    from study_app.services.creation import create_study
    from study_app.services.database import open_database
    from study_app.services.export import write_export

    manifest, readers = two_site_cohort_dir(tmp_path)
    db = open_database(f"sqlite:///{tmp_path / 'study.sqlite'}")
    try:
        create_study(db, SYSTEM, study_id="two", design_path=shipped_design_path("two_site"),
                     manifest_path=manifest, readers_path=readers, seed=5)
        outs = {fmt: write_export(db, SYSTEM, "two", tmp_path / fmt, fmt=fmt) for fmt in ("csv", "parquet", "sqlite")}
        # A design without [sites] on the same sited cohort and roster: the sites are recorded, not allocated by.
        create_study(db, SYSTEM, study_id="plain", design_path=shipped_design_path("chexone"),
                     manifest_path=manifest.with_name("manifest_sites.csv"),
                     readers_path=readers.with_name("readers_sites.csv"), seed=5)
        plain = write_export(db, SYSTEM, "plain", tmp_path / "plain")
    finally:
        db.dispose()
    expected_cases = dict(zip(pd.read_csv(manifest)["case_id"], pd.read_csv(manifest)["site"]))
    expected_readers = dict(zip(pd.read_csv(readers)["reader_id"], pd.read_csv(readers)["site"]))
    for fmt, out in outs.items():
        tables = load_tables(out if fmt != "sqlite" else out / "study.sqlite")
        assert dict(zip(tables.cases["case_id"], tables.cases["site"])) == expected_cases, fmt
        assert dict(zip(tables.readers["reader_id"], tables.readers["site"])) == expected_readers, fmt
        assert tables.meta["sites"] == {"mode": "crossed", "balance": True}, fmt
    plain_meta = json.loads((plain / "export_meta.json").read_text())
    assert plain_meta["sites"] is None
    assert set(pd.read_csv(plain / "cases.csv")["site"]) == {"site_a", "site_b"}


def test_a_reader_added_to_a_sited_study_needs_a_site(tmp_path, monkeypatch):
    """`readers add --site` places the new reader at the site; without one a [sites] study refuses them by name."""
    from click.testing import CliRunner
    from sqlalchemy import select

    from study_app.cli import main
    from study_app.services.database import open_database
    from study_app.store.models import Reader

    manifest, readers = two_site_cohort_dir(tmp_path)
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    monkeypatch.setenv("READERSTUDY_DB", url)
    runner = CliRunner()
    create = runner.invoke(main, ["study", "create", "two", "--design", "two_site", "--cohort", str(manifest),
                                  "--readers", str(readers), "--seed", "5"])
    assert create.exit_code == 0, create.output
    refused = runner.invoke(main, ["readers", "add", "two", "--reader", "res9", "--role", "resident"])
    assert refused.exit_code != 0 and "[sites]: reader 'res9' has no site" in refused.output
    added = runner.invoke(main, ["readers", "add", "two", "--reader", "res9", "--role", "resident", "--site", "site_b"])
    assert added.exit_code == 0, added.output
    db = open_database(url)
    try:
        with db.read() as session:
            assert session.scalar(select(Reader.site).where(Reader.reader_key == "res9")) == "site_b"
    finally:
        db.dispose()

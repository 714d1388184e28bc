"""Random-reader mixed model on log(duration): reader, reader x condition and case effects, reported as a ratio of geometric means with Satterthwaite df."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.defaults import DEFAULT_SEED
from analysis.stats.lmm import mixed_model

#: Above this many reads the model is fitted on a seeded random subset of whole
#: cases (all reads of a drawn case are kept): the Satterthwaite df need dense
#: n x n matrices. The OR analysis and the two-way bootstrap always use every read.
DEFAULT_MAX_READS = 1500
RANDOM_TERMS = ("reader", "reader:condition", "case", "case:condition")


def mixed_model_ratio(data: pd.DataFrame, dv: str, condition: str, levels: tuple[str, str], *,
                      reader: str = "reader_id", case: str = "case_id",
                      max_reads: int | None = DEFAULT_MAX_READS, seed: int = DEFAULT_SEED,
                      confidence: float = 0.95, period: str | None = "reading_session",
                      site: str | None = "site") -> dict:
    """Ratio of geometric means from a random-reader mixed model on log(dv).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per read.
    dv : str
        Positive measurement (``'duration_s'``); zero or negative values are refused.
    condition : str
        Condition column; ``levels = (reference, comparison)``.
    levels : tuple of str
    reader, case : str
        Reader and case columns.
    max_reads : int or None
        Fit on a seeded subset of whole cases when there are more reads (None: never).
    seed : int
        Seed of the case subsample.
    confidence : float
    period : str or None
        Period column of a crossover (the export's ``reading_session``): when the fitted reads fall in more
        than one period it enters as a categorical fixed effect (None, a missing column or one period: not).
    site : str or None
        Site column of a multi-site study (the case's site, ``site`` of :meth:`StudyTables.counted_reads`): when
        every fitted read has one and they span more than one site it enters as a categorical fixed effect
        (None, a missing column, a read without a site or one site: not).

    Returns
    -------
    dict
        * ``'ratio'``: :math:`e^{\\hat\\beta}`, geometric-mean ratio comparison / reference
        * ``'ci_low'``, ``'ci_high'``: :math:`e^{\\hat\\beta \\pm t_{\\nu} SE}`
        * ``'beta'``, ``'se'``, ``'df'`` (Satterthwaite :math:`\\nu`), ``'t'``, ``'p_val'``
        * ``'var_reader'``, ``'var_reader_condition'``, ``'var_case'``,
          ``'var_case_condition'``, ``'var_residual'``: REML variance components
          (NaN for a term not in the final model)
        * ``'terms_dropped'``: list of ``{'term', 'reason'}`` (not estimable, or 0)
        * ``'period_effects'``: ``{level: estimate}`` of the period fixed effect on the log scale (relative
          to the first period), empty when no period entered the model
        * ``'site_effects'``: ``{site: estimate}`` of the site fixed effect on the log scale (relative to the
          first site in sorted order), empty when no site entered the model
        * ``'model'``: the random part actually fitted, in lme4 notation
        * ``'n_reads'``, ``'n_readers'``, ``'n_cases'``, ``'subsampled'``, ``'converged'``

    Raises
    ------
    ValueError
        A zero or negative ``dv`` (the log is undefined; the export's validation
        normally excludes these first), no variation, a condition without reads, or
        fewer than two readers in a condition (no reader variance, so no
        random-reader inference).

    Notes
    -----
    :math:`\\log y_{rcj} = \\mu + \\beta x_j + u_r + (uc)_{rj} + v_c + (vc)_{cj} + \\varepsilon`
    with :math:`u_r \\sim N(0, \\sigma^2_R)` (reader), :math:`(uc)_{rj} \\sim N(0,
    \\sigma^2_{RC})` (reader x condition: readers differ in how much the condition
    helps them), :math:`v_c \\sim N(0, \\sigma^2_C)` (case), :math:`(vc)_{cj} \\sim
    N(0, \\sigma^2_{CC})` (case x condition, estimable only when a case is read
    more than once in a condition), fitted by REML (:func:`mixed_model`), and
    :math:`\\hat\\beta` tested with Satterthwaite's df. Without the reader x
    condition term a true null is rejected far more often than 5% when readers
    differ in their benefit, because the test then treats reads, not readers, as
    the replicates of the condition effect. Terms the design cannot identify (one
    read per case and condition; readers nested in conditions) are dropped and
    listed.

    A crossover (``[sessions]``) adds :math:`+ \\pi_{p}` for the read's period :math:`p` (its reading
    session). With the modality order exactly balanced within every reader a period effect (practice,
    fatigue, recall) cancels from :math:`\\hat\\beta`; balance within one, a subsample of cases or missing
    reads leave more reads of one order than of the other, and a period effect left out then biases it. As a
    fixed effect it is removed (Senn 2002, ch. 3; Jones & Kenward 2014). The random-reader terms are
    unchanged, so the inference still generalises to readers and cases.

    A multi-site study adds :math:`+ \\gamma_{s}` for the site :math:`s` of the read's case. Sites are few (two or
    three), so their variance cannot be estimated as a random effect; as a fixed effect they remove a difference
    in level between the sites' cases (case mix, image quality, local habits), and a reader or case random effect
    no longer has to carry it. Readers stay random: the condition effect is still tested against the reader x
    condition variation, so the conclusion is about readers and cases like these, at sites like these.

    References
    ----------
    Baayen, R. H., Davidson, D. J., & Bates, D. M. (2008). Mixed-effects modeling
    with crossed random effects for subjects and items. Journal of Memory and
    Language, 59(4), 390-412.

    Barr, D. J., Levy, R., Scheepers, C., & Tily, H. J. (2013). Random effects
    structure for confirmatory hypothesis testing: keep it maximal. Journal of
    Memory and Language, 68(3), 255-278.

    Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest
    package: tests in linear mixed effects models. Journal of Statistical
    Software, 82(13), 1-26.

    Senn, S. (2002). Cross-over Trials in Clinical Research (2nd ed.). Wiley.

    Jones, B., & Kenward, M. G. (2014). Design and Analysis of Cross-Over Trials (3rd ed.). CRC Press.

    Examples
    --------
    >>> from analysis.simulate import simulate_study
    >>> from analysis.stats import mixed_model_ratio
    >>> reads = simulate_study(seed=1, reader_condition_sd=0.2).counted_reads()
    >>> residents = reads[reads["reader_role"] == "resident"]
    >>> r = mixed_model_ratio(residents, "duration_s", "condition", ("write", "edit_model"))
    >>> 0.5 < r["ratio"] < 0.9, r["model"], [d["term"] for d in r["terms_dropped"]]
    (True, '(1|reader) + (1|reader:condition) + (1|case)', ['case:condition'])
    """
    for col in (dv, condition, reader, case):
        if col not in data.columns:
            raise ValueError(f"data lack column {col!r}")
    keep_cols = [dv, condition, reader, case] + [c for c in (period, site) if c and c in data.columns]
    sub = data.loc[data[condition].isin(levels), keep_cols].dropna(subset=[dv])
    nonpositive = int((sub[dv] <= 0).sum())
    if nonpositive:
        raise ValueError(f"{nonpositive} read(s) have {dv} <= 0: the log scale is undefined; exclude them first")
    for lv in levels:
        n_r = sub.loc[sub[condition] == lv, reader].nunique()
        if n_r < 2:
            raise ValueError(f"condition {lv!r} has {n_r} reader(s): random-reader inference needs at least 2")
    subsampled = False
    if max_reads is not None and len(sub) > max_reads:
        rng = np.random.default_rng(seed)
        cases = sub[case].unique()
        n_keep = max(2, int(max_reads / (len(sub) / len(cases))))
        keep = rng.choice(cases, size=min(n_keep, len(cases)), replace=False)
        sub = sub.loc[sub[case].isin(keep)]
        subsampled = True
    frame = pd.DataFrame({"log_y": np.log(sub[dv].to_numpy(dtype=float)),
                          "condition": sub[condition].astype(str).to_numpy(),
                          "reader": sub[reader].astype(str).to_numpy(), "case": sub[case].astype(str).to_numpy()})
    covariates: tuple[str, ...] = ()
    if period and period in sub.columns and sub[period].notna().all() and sub[period].nunique() > 1:
        frame["period"] = sub[period].astype(int).astype(str).to_numpy()
        covariates = ("period",)
    if site and site in sub.columns and sub[site].notna().all() and sub[site].nunique() > 1:
        frame["site"] = sub[site].astype(str).to_numpy()
        covariates = (*covariates, "site")
    fit = mixed_model(frame, "log_y", RANDOM_TERMS, fixed="condition", levels=tuple(map(str, levels)),
                      covariates=covariates, confidence=confidence)
    row = fit.fixed.set_index("term").loc["comparison"]
    vc = fit.variance_components
    kept = [t for t in RANDOM_TERMS if t in vc and not any(d["term"] == t for d in fit.terms_dropped)]
    return {
        "ratio": float(np.exp(row["estimate"])), "ci_low": float(np.exp(row["ci_low"])),
        "ci_high": float(np.exp(row["ci_high"])), "beta": float(row["estimate"]), "se": float(row["se"]),
        "df": float(row["df"]), "t": float(row["t"]), "p_val": float(row["p_val"]),
        "var_reader": vc.get("reader", float("nan")), "var_reader_condition": vc.get("reader:condition", float("nan")),
        "var_case": vc.get("case", float("nan")), "var_case_condition": vc.get("case:condition", float("nan")),
        "var_residual": vc["residual"], "terms_dropped": fit.terms_dropped,
        "period_effects": {t[len("period["):-1]: float(e) for t, e in zip(fit.fixed["term"], fit.fixed["estimate"])
                           if t.startswith("period[")},
        "site_effects": {t[len("site["):-1]: float(e) for t, e in zip(fit.fixed["term"], fit.fixed["estimate"])
                         if t.startswith("site[")},
        "model": " + ".join(f"(1|{t})" for t in kept) or "residual only",
        "n_reads": int(len(frame)), "n_readers": int(frame["reader"].nunique()),
        "n_cases": int(frame["case"].nunique()), "subsampled": subsampled, "converged": fit.converged,
    }

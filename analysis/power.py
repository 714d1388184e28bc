"""Power and sample size for the primary endpoint over a grid of readers x cases: Obuchowski-Rockette/Hillis analytically, and by seeded simulation through the same analysis code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.defaults import DEFAULT_SEED
from analysis.plan import AnalysisPlan
from analysis.simulate import simulate_timed_reads
from analysis.stats.mixed import mixed_model_ratio
from analysis.stats.mrmc import or_hillis

#: Planning assumptions when neither the design nor a pilot gives them (log-duration SDs
#: of the order the CheXOne-like simulations use; state your own in [analysis.power]).
DEFAULT_POWER = {"effect": 0.8, "readers": [4, 6, 8, 10, 12], "cases": [40, 80, 120, 160, 240], "n_sim": 200,
                 "seed": DEFAULT_SEED, "reader_sd": 0.3, "reader_condition_sd": 0.15, "case_sd": 0.25,
                 "residual_sd": 0.35}


@dataclass(frozen=True)
class ORComponents:
    """OR error variance and covariances of one reader x condition cell mean read on ``m`` cases
    by ``r`` readers, and the test x reader variance (see :func:`or_power`)."""

    var_tr: float
    error: float
    cov1: float
    cov2: float
    cov3: float
    m: float
    r: int
    source: str = "assumed"

    def scaled(self, r: int, m: float, allocation: str) -> "ORComponents":
        """The components for a study with ``r`` readers and ``m`` cases per cell.

        Error variance and Cov1/Cov2 are averages over ``m`` cases, so they scale with
        ``self.m / m``. Cov3 in the ``'chexone'`` allocation comes from the cases two
        readers share across conditions, about ``m / (r - 1)`` per pair, so it also
        scales with ``(self.r - 1) / (r - 1)``.
        """
        f = self.m / m
        f3 = f * ((self.r - 1) / (r - 1) if allocation == "chexone" and self.r > 1 and r > 1 else 1.0)
        return ORComponents(self.var_tr, self.error * f, self.cov1 * f, self.cov2 * f, self.cov3 * f3, m, r,
                            self.source)


def or_power(effect: float, n_readers: int, components: ORComponents, *, alpha: float = 0.05) -> dict:
    """Power of the two-condition OR/Hillis test for random readers and random cases.

    Parameters
    ----------
    effect : float
        True difference of the two conditions' mean FOMs (a log time ratio for
        durations).
    n_readers : int
        Readers, each reading both conditions.
    components : ORComponents
        Variance components *for the planned study* (see :meth:`ORComponents.scaled`).
    alpha : float
        Two-sided level.

    Returns
    -------
    dict
        ``power``, ``ddf`` (expected Hillis df), ``noncentrality``, ``se`` (true SE of
        the difference), ``expected_denominator``.

    Notes
    -----
    Hillis, Obuchowski & Berbaum (2011): with :math:`r` readers,
    :math:`V = \\sigma^2_{TR} + \\sigma^2_\\epsilon - Cov_1 + (r-1)(Cov_2 - Cov_3)` (so
    :math:`\\mathrm{Var}(\\hat\\theta_{1\\cdot} - \\hat\\theta_{2\\cdot}) = 2V/r`) and
    :math:`E\\,MS(T{:}R) = \\sigma^2_{TR} + \\sigma^2_\\epsilon - Cov_1 - Cov_2 + Cov_3`,
    the test's denominator has expectation
    :math:`D = E\\,MS(T{:}R) + r\\max(Cov_2 - Cov_3, 0)` and
    :math:`ddf = D^2 / [E\\,MS(T{:}R)^2/(r-1)]`; the statistic is approximately
    :math:`(V/D)\\,F'(1, ddf, \\lambda)` with :math:`\\lambda = r\\delta^2/(2V)`, so
    power :math:`= P\\{F'(1, ddf, \\lambda) > F_{1-\\alpha}(1, ddf)\\,D/V\\}`. Without
    truncation :math:`D = V` and this is HOB's formula; with it (designs where each
    reader reads different cases per condition, :math:`Cov_2 = 0 < Cov_3`) the
    conservative denominator is carried into the power.

    References
    ----------
    Hillis, S. L., Obuchowski, N. A., & Berbaum, K. S. (2011). Power estimation for
    multireader ROC methods: an updated and unified approach. Academic Radiology,
    18(2), 129-142.

    Obuchowski, N. A. (2000). Sample size tables for receiver operating
    characteristic studies. American Journal of Roentgenology, 175(3), 603-608.

    Examples
    --------
    >>> from analysis.power import ORComponents, or_power
    >>> c = ORComponents(var_tr=0.005, error=0.01, cov1=0.0, cov2=0.0, cov3=0.0, m=13, r=10)
    >>> round(or_power(-0.223, 10, c)["power"], 2)
    0.95
    """
    r = int(n_readers)
    if r < 2:
        raise ValueError("random-reader power needs at least 2 readers")
    c = components
    v = c.var_tr + c.error - c.cov1 + (r - 1) * (c.cov2 - c.cov3)
    e_mstr = c.var_tr + c.error - c.cov1 - c.cov2 + c.cov3
    if not (v > 0 and e_mstr > 0):
        raise ValueError("the variance components give no positive variance of the difference")
    d = e_mstr + r * max(c.cov2 - c.cov3, 0.0)
    ddf = d ** 2 / (e_mstr ** 2 / (r - 1))
    lam = r * effect ** 2 / (2 * v)
    crit = stats.f.ppf(1 - alpha, 1, ddf) * d / v
    return {"power": float(stats.ncf.sf(crit, 1, ddf, lam)), "ddf": float(ddf), "noncentrality": float(lam),
            "se": float(np.sqrt(2 * v / r)), "expected_denominator": float(d)}


def components_from_sds(reader_condition_sd: float, case_sd: float, residual_sd: float, *, m: float,
                        r: int) -> ORComponents:
    """OR components of the CheXOne allocation implied by log-duration SDs (m cases per cell, r readers).

    A cell mean of :math:`m` reads has case-sampling variance
    :math:`(\\sigma^2_C + \\sigma^2_e)/m`; a reader x condition effect is the OR
    :math:`\\sigma^2_{TR}`; a case read in both conditions (by two readers) gives
    :math:`Cov_3 \\approx \\sigma^2_C / [(r-1)m]`; Cov1 = Cov2 = 0 because no reader
    reads a case twice and no case is read twice in a condition.
    """
    return ORComponents(var_tr=reader_condition_sd ** 2, error=(case_sd ** 2 + residual_sd ** 2) / m, cov1=0.0,
                        cov2=0.0, cov3=case_sd ** 2 / ((r - 1) * m), m=m, r=r, source="assumed SDs")


def components_from_or(result) -> ORComponents:
    """OR components estimated on a pilot (an :class:`~analysis.stats.mrmc.ORResult` of two conditions)."""
    vc = result.variance_components.set_index("component")["estimate"]
    m = float(result.readers["n_cases"].mean())
    return ORComponents(var_tr=max(float(vc.get("test_x_reader", 0.0)), 0.0), error=float(vc["error"]),
                        cov1=float(vc["cov1"]), cov2=float(vc["cov2"]), cov3=float(vc["cov3"]), m=m,
                        r=result.n_readers, source="pilot")


def cases_per_cell(n_cases: int, n_readers: int, allocation: str) -> float:
    """Cases each reader reads in each condition: C/R when every case is read once per condition
    (the CheXOne allocation), C when every reader reads every case in both (factorial)."""
    return n_cases / n_readers if allocation == "chexone" else float(n_cases)


def simulated_power(effect_ratio: float, n_readers: int, n_cases: int, *, sds: dict, method: str = "or_hillis",
                    n_sim: int = 200, seed: int = DEFAULT_SEED, alpha: float = 0.05) -> dict:
    """Power of the primary time-ratio analysis by simulation through the analysis code itself.

    Parameters
    ----------
    effect_ratio : float
        True time ratio.
    n_readers, n_cases : int
    sds : dict
        ``reader_sd``, ``reader_condition_sd``, ``case_sd``, ``residual_sd`` (log scale).
    method : {'or_hillis', 'mixed_model'}
    n_sim : int
        Simulated studies; the Monte-Carlo SE of the power is ``sqrt(p(1-p)/n_sim)``.
    seed : int
        Study ``i`` uses seed ``seed + i``: same seed, same power.
    alpha : float

    Returns
    -------
    dict
        ``power``, ``mc_se``, ``n_sim``, ``n_failed`` (studies the method refused).
    """
    if method not in ("or_hillis", "mixed_model"):
        raise ValueError("method must be or_hillis or mixed_model")
    rejections = failed = 0
    for i in range(n_sim):
        d = simulate_timed_reads(n_readers, n_cases, time_ratio=effect_ratio, seed=seed + i,
                                 **{k: sds[k] for k in ("reader_sd", "reader_condition_sd", "case_sd", "residual_sd")})
        try:
            if method == "or_hillis":
                res = or_hillis(d.assign(value=np.log(d["duration_s"])), "value", "condition", "reader_id",
                                "case_id", levels=("edit_model", "write"))
                p = res.differences.set_index("conclusion").loc["random_readers_random_cases", "p_val"]
            else:
                p = mixed_model_ratio(d, "duration_s", "condition", ("write", "edit_model"))["p_val"]
        except ValueError:
            failed += 1
            continue
        rejections += bool(np.isfinite(p) and p < alpha)
    n_ok = n_sim - failed
    power = rejections / n_ok if n_ok else float("nan")
    return {"power": power, "mc_se": float(np.sqrt(power * (1 - power) / n_ok)) if n_ok else float("nan"),
            "n_sim": n_sim, "n_failed": failed}


def power_grid(plan: AnalysisPlan, *, pilot=None, readers=None, cases=None, effect: float | None = None,
               n_sim: int = 0, seed: int | None = None, allocation: str = "chexone") -> pd.DataFrame:
    """Power of the plan's primary endpoint over readers x cases.

    Parameters
    ----------
    plan : AnalysisPlan
        The primary endpoint, alpha and the ``[analysis.power]`` assumptions.
    pilot : StudyTables, optional
        A pilot export: its primary endpoint's OR variance components (and, for the
        simulation, its mixed-model SDs) replace the assumptions.
    readers, cases : list of int, optional
        Grid (default: the plan's, else 4-12 readers x 40-240 cases).
    effect : float, optional
        Effect to detect: a time ratio for ``time_ratio``, else a difference on the
        FOM scale (default: the plan's ``effect``).
    n_sim : int
        Simulated studies per grid cell (0: analytic only). Time ratios only.
    seed : int, optional
    allocation : {'chexone', 'factorial'}
        How cases are spread: each case once per condition by different readers, or
        every reader on every case in both conditions.

    Returns
    -------
    pandas.DataFrame
        One row per grid cell: ``n_readers``, ``n_cases``, ``cases_per_reader_condition``,
        ``power`` (analytic OR/Hillis), ``ddf``, ``se`` (of the difference, FOM scale)
        and, with ``n_sim``, ``power_simulated_or``, ``power_simulated_mixed``,
        ``mc_se``; ``attrs`` carry ``effect``, ``alpha``, ``source`` and the
        components used.
    """
    e = plan.primary
    assumptions = {**DEFAULT_POWER, **plan.power}
    readers = sorted(readers or assumptions["readers"])
    cases = sorted(cases or assumptions["cases"])
    effect = float(effect if effect is not None else assumptions["effect"])
    seed = int(seed if seed is not None else assumptions["seed"])
    if e.endpoint == "time_ratio":
        if effect <= 0:
            raise ValueError("a time-ratio effect must be positive (e.g. 0.8 for 20% faster)")
        delta = float(np.log(effect))
    else:
        delta = effect
        if pilot is None:
            raise ValueError(f"the primary endpoint is {e.endpoint}: power needs a pilot export (--pilot) for its "
                             "variance components; assumed SDs exist for time ratios only")
    sds = {k: assumptions[k] for k in ("reader_sd", "reader_condition_sd", "case_sd", "residual_sd")}
    if pilot is not None:
        base, sds = _pilot_components(plan, pilot, sds)
    else:
        base = None
    rows = []
    for r in readers:
        for c in cases:
            if c < 2 * r and allocation == "chexone":
                continue  # fewer than two cases per reader and condition: no case-sampling variance
            m = cases_per_cell(c, r, allocation)
            comp = base.scaled(r, m, allocation) if base is not None else components_from_sds(
                sds["reader_condition_sd"], sds["case_sd"], sds["residual_sd"], m=m, r=r)
            res = or_power(delta, r, comp, alpha=plan.alpha)
            row = {"n_readers": r, "n_cases": c, "cases_per_reader_condition": m, "power": res["power"],
                   "ddf": res["ddf"], "se": res["se"]}
            if n_sim and e.endpoint == "time_ratio":
                for method, key in (("or_hillis", "power_simulated_or"), ("mixed_model", "power_simulated_mixed")):
                    sim = simulated_power(effect, r, c, sds=sds, method=method, n_sim=n_sim, seed=seed,
                                          alpha=plan.alpha)
                    row[key] = sim["power"]
                row["mc_se"] = float(np.sqrt(0.25 / n_sim))
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(effect=effect, delta=delta, alpha=plan.alpha, endpoint=e.name, allocation=allocation,
                     source="pilot" if pilot is not None else "assumed", sds=sds,
                     components=None if base is None else base.__dict__)
    return out


def _pilot_components(plan: AnalysisPlan, pilot, sds: dict):
    """OR components of the primary endpoint on the pilot, and log-duration SDs from its mixed model."""
    from analysis.endpoints import endpoint_frame

    e = plan.primary
    reads = pilot.counted_reads()
    zero = set(pilot.exclusions.get("zero_duration", []))
    reads = reads.loc[~reads["assignment_id"].isin(zero)]
    answers = pilot.answers.merge(reads[["assignment_id", "reader_id", "reader_role", "case_id", "task",
                                         "draft_source", "condition"]], on="assignment_id")
    levels = ("model_preferred", "reader_preferred") if e.endpoint == "preference_share" else (e.comparison, e.reference)
    if None in levels:
        raise ValueError("power is planned for a two-condition primary endpoint")
    if e.endpoint == "detection_auc":
        # The pilot's averaged-over-findings AUC difference, as the endpoint computes it (analysis.endpoints).
        from analysis.detection import detection_reads
        from analysis.endpoints import detection_frame

        frame, findings = detection_frame(e, reads, detection_reads(pilot))
        res = or_hillis(frame, "value", "test", "reader_id", "case_id", fom="auc", truth="truth", levels=levels,
                        stratum="finding" if len(findings) > 1 else None)
    else:
        res = or_hillis(endpoint_frame(e, reads, answers), "value", "test", "reader_id", "case_id", levels=levels)
    comps = components_from_or(res)
    if e.endpoint == "time_ratio":
        sub = reads.loc[reads["reader_role"].eq(e.role) & reads["duration_s"].gt(0)]
        try:
            mm = mixed_model_ratio(sub, "duration_s", "condition", (e.reference, e.comparison))
            sds = {"reader_sd": float(np.sqrt(np.nan_to_num(mm["var_reader"]))),
                   "reader_condition_sd": float(np.sqrt(np.nan_to_num(mm["var_reader_condition"]))),
                   "case_sd": float(np.sqrt(np.nan_to_num(mm["var_case"]))),
                   "residual_sd": float(np.sqrt(mm["var_residual"]))}
        except ValueError:
            pass
    return comps, sds


def power_figure(grid: pd.DataFrame):
    """Plotly figure: power against cases, one line per number of readers, 80% marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for r, g in grid.groupby("n_readers"):
        fig.add_trace(go.Scatter(x=g["n_cases"], y=g["power"], mode="lines+markers", name=f"{r} readers (OR/Hillis)"))
        if "power_simulated_or" in g:
            fig.add_trace(go.Scatter(x=g["n_cases"], y=g["power_simulated_or"], mode="markers",
                                     marker=dict(symbol="x"), name=f"{r} readers, simulated OR", showlegend=True))
    fig.add_hline(y=0.8, line_dash="dash", line_color="grey")
    a = grid.attrs
    what = f"time ratio {a['effect']:g}" if a.get("delta") != a.get("effect") else f"difference {a['effect']:g}"
    fig.update_layout(title=f"Power for {a.get('endpoint')}: {what}, alpha {a.get('alpha'):g}, random readers and "
                      f"cases ({a.get('source')} variance components)", xaxis_title="cases",
                      yaxis_title="power", yaxis=dict(range=[0, 1]), template="plotly_white")
    return fig

"""The findings of a detection study: the default CheXpert list, a cohort's labels checked against a design's list,
and the labels of a case read in that list's own spelling."""

from __future__ import annotations

import difflib

from cohorts.manifest import CaseRecord, Cohort, Problem, finding_key

__all__ = ["CHEXPERT_FINDINGS", "check_labels", "model_probabilities", "reference_standard"]

# The 14 observations labelled in CheXpert, in the order of its label files.
# Irvin J, Rajpurkar P, Ko M, et al. CheXpert: A Large Chest Radiograph Dataset with Uncertainty Labels and Expert
# Comparison. Proceedings of the AAAI Conference on Artificial Intelligence 33(01):590-597, 2019.
# doi:10.1609/aaai.v33i01.3301590
CHEXPERT_FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)


def _by_key(findings: tuple[str, ...]) -> dict[str, str]:
    """The study's findings by :func:`cohorts.manifest.finding_key`; a list that is empty or names a finding twice
    is refused (it is the design's mistake, not the cohort's)."""
    if isinstance(findings, str) or not findings:
        raise ValueError("findings must be a non-empty tuple of finding names")
    by_key: dict[str, str] = {}
    for name in findings:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"finding names must be non-empty text, got {name!r}")
        key = finding_key(name)
        if key in by_key:
            raise ValueError(f"finding {name!r} is in the list twice (also as {by_key[key]!r})")
        by_key[key] = name
    return by_key


def check_labels(
    cohort: Cohort, findings: tuple[str, ...], *, need_reference: bool, need_model: bool
) -> list[Problem]:
    """Check a cohort's reference and model labels against a study's list of findings.

    The manifest checks each labels cell on its own (form, values, names given twice); which findings exist is
    the design's to say, so study creation calls this with the design's list.

    Parameters
    ----------
    cohort : Cohort
        A loaded cohort (:func:`cohorts.load_manifest`).
    findings : tuple of str
        The study's findings, e.g. :data:`CHEXPERT_FINDINGS`. Names match whatever their case, spaces and
        underscores (``"pleural_effusion"`` is ``"Pleural Effusion"``).
    need_reference : bool
        Every case must give a reference for every finding: a JSON object with each finding (``null``, "not
        known", counts as given), or the list of the findings present, which covers them all.
    need_model : bool
        Every case must give the model's probability for every finding.

    Returns
    -------
    list of Problem
        In case order, each naming the case's row and the column (``reference_labels`` or ``model_labels``);
        empty when the cohort fits the list.

    Raises
    ------
    ValueError
        When ``findings`` is empty or names a finding twice.

    Examples
    --------
    >>> for problem in check_labels(cohort, CHEXPERT_FINDINGS, need_reference=True, need_model=False):  # doctest: +SKIP
    ...     print(problem)
    row 3, column reference_labels: finding 'Cardiomegally' is not in the study's list; did you mean 'Cardiomegaly'?
    """
    by_key = _by_key(tuple(findings))
    problems: list[Problem] = []
    for case in cohort.cases:
        for column, labels, needed in (
            ("reference_labels", case.reference_labels, need_reference),
            ("model_labels", case.model_labels, need_model),
        ):
            for name in labels:
                if finding_key(name) not in by_key:
                    close = difflib.get_close_matches(finding_key(name), list(by_key), n=1, cutoff=0.6)
                    hint = f"; did you mean {by_key[close[0]]!r}?" if close else f"; the study's findings: {', '.join(findings)}"
                    problems.append(Problem(case.row, column, f"finding {name!r} is not in the study's list{hint}"))
            if not needed:
                continue
            what = "a reference (1, 0 or null)" if column == "reference_labels" else "the model's probability"
            if not labels:
                problems.append(
                    Problem(case.row, column, f"case {case.case_id!r} has no {column}; the study needs {what} for each of its {len(findings)} findings")
                )
                continue
            if column == "reference_labels" and case.reference_labels_listed:
                continue  # the list of findings present says every other finding is absent
            given = {finding_key(name) for name in labels}
            missing = [name for key, name in by_key.items() if key not in given]
            if missing:
                problems.append(Problem(case.row, column, f"case {case.case_id!r} lacks {what} for {', '.join(missing)}"))
    return problems


def reference_standard(case: CaseRecord, findings: tuple[str, ...]) -> dict[str, int | None]:
    """The case's reference per finding of the study's list, in the list's order and spelling.

    Parameters
    ----------
    case : CaseRecord
    findings : tuple of str
        The study's findings.

    Returns
    -------
    dict of str to int or None
        1 present, 0 absent, None not known: a finding the case does not give (or gives as ``null``) is None, unless
        the case listed the findings present, where every finding not listed is 0.

    Examples
    --------
    >>> reference_standard(case, ("Cardiomegaly", "Edema"))  # doctest: +SKIP
    {'Cardiomegaly': 1, 'Edema': 0}
    """
    by_key = _by_key(tuple(findings))
    given = {finding_key(name): value for name, value in case.reference_labels.items()}
    absent = 0 if case.reference_labels_listed else None
    return {name: given.get(key, absent) for key, name in by_key.items()}


def model_probabilities(case: CaseRecord, findings: tuple[str, ...]) -> dict[str, float | None]:
    """The model's probability per finding of the study's list, in the list's order and spelling (None where the
    case gives none).

    Examples
    --------
    >>> model_probabilities(case, ("Cardiomegaly", "Edema"))  # doctest: +SKIP
    {'Cardiomegaly': 0.82, 'Edema': None}
    """
    by_key = _by_key(tuple(findings))
    given = {finding_key(name): value for name, value in case.model_labels.items()}
    return {name: given.get(key) for key, name in by_key.items()}

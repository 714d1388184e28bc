"""Self-consistency of sampled multiple-choice answers, as the normalized entropy score of the CheXOne paper."""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence


def consistency_score(answers: Sequence[str | None], options: Sequence[str]) -> float:
    """Agreement of ``n`` sampled answers over ``K`` options: ``1 - H(p) / log(K)``.

    Parameters
    ----------
    answers : sequence of str or None
        One chosen option per sample (e.g. letters from
        :func:`model_runtime.parsing.extract_choice`). ``None`` (no readable choice)
        and values not in ``options`` are dropped before counting.
    options : sequence of str
        The ``K`` possible options (``K >= 2``), e.g. ``["A", "B", "C", "D"]``.

    Returns
    -------
    float
        1.0 when every sample agrees, 0.0 when the answers are spread uniformly over
        all ``K`` options. ``nan`` when no sample holds a valid option.

    Notes
    -----
    With ``p_k`` the share of valid samples choosing option ``k``,
    ``H(p) = -sum_k p_k log p_k`` (natural log, ``0 log 0 = 0``) and the score is
    ``1 - H(p) / log K``. The base of the logarithm cancels.

    References
    ----------
    CheXOne paper (StanfordAIMI): self-consistency over sampled reasoning traces,
    measured as one minus the normalized entropy of the answer distribution.
    Shannon, C. E. (1948). A mathematical theory of communication. Bell System
    Technical Journal, 27(3), 379-423.

    Examples
    --------
    >>> consistency_score(["A", "A", "A", "A"], ["A", "B", "C", "D"])
    1.0
    >>> consistency_score(["A", "B", "C", "D"], ["A", "B", "C", "D"])
    0.0
    """
    options = list(dict.fromkeys(options))
    if len(options) < 2:
        raise ValueError(f"need at least 2 distinct options, got {len(options)}")
    allowed = set(options)
    counts = Counter(a for a in answers if a is not None and a in allowed)
    total = sum(counts.values())
    if total == 0:
        return float("nan")
    entropy = -sum((c / total) * math.log(c / total) for c in counts.values() if c)
    score = 1.0 - entropy / math.log(len(options))
    return min(1.0, max(0.0, score)) if abs(score) > 1e-12 else 0.0

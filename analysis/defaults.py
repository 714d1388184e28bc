"""The analysis's one default seed, and how a study's own seed is found in its export."""

from __future__ import annotations

#: Seed of every resample (bootstrap, permutation, case subsample, simulation) when none is given. An analysis
#: of a study uses the study's own seed instead (:func:`study_seed`), so its figures reproduce from the export.
DEFAULT_SEED = 20240601


def study_seed(meta: dict) -> int:
    """The seed an analysis of this export uses: the study's seed recorded in ``export_meta.json``, else the
    default one."""
    seed = meta.get("seed") if isinstance(meta, dict) else None
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else DEFAULT_SEED

"""Reader-study statistics, one documented function per statistic, grouped by topic."""

from analysis.stats.agreement import icc_crossed, icc_oneway, intraclass_corr
from analysis.stats.bootstrap import bootstrap_ci, two_way_bootstrap_ratio
from analysis.stats.descriptive import describe
from analysis.stats.lmm import mixed_model
from analysis.stats.mixed import mixed_model_ratio
from analysis.stats.mrmc import empirical_auc, or_hillis
from analysis.stats.multiplicity import adjust_pvalues
from analysis.stats.paired import paired_ttest, pair_by_key, wilcoxon_signed_rank
from analysis.stats.proportions import mcnemar_test, proportion_shares, sign_test, wilson_ci
from analysis.stats.text import bleu, corpus_bleu, edit_metrics, levenshtein_chars, levenshtein_words, rouge_l

__all__ = [
    "adjust_pvalues", "bleu", "bootstrap_ci", "corpus_bleu", "describe", "edit_metrics", "empirical_auc", "icc_crossed", "icc_oneway",
    "intraclass_corr", "levenshtein_chars", "levenshtein_words", "mcnemar_test", "mixed_model", "mixed_model_ratio", "or_hillis", "pair_by_key",
    "paired_ttest", "proportion_shares", "rouge_l", "sign_test", "two_way_bootstrap_ratio", "wilcoxon_signed_rank",
    "wilson_ci",
]

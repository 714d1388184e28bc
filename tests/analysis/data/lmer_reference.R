# Reference values for tests/analysis/test_lmm.py, computed with R 4.2.2, lme4 1.1-31,
# lmerTest 3.1-3 and pbkrtest (Debian packages r-cran-lme4, r-cran-lmertest, r-cran-pbkrtest).
# Run from the repository root:  Rscript tests/analysis/data/lmer_reference.R
# The printed numbers are copied into test_lmm.py; R is never needed by the test suite.
suppressMessages({library(lmerTest); library(pbkrtest)})
d <- read.csv("tests/analysis/data/lmer_reference.csv", stringsAsFactors = TRUE)
d$condition <- relevel(factor(d$condition), ref = "write")
show <- function(label, fit) {
  cat("==", label, "\n")
  cat(sprintf("REMLcrit %.8f\n", REMLcrit(fit)))
  vc <- as.data.frame(VarCorr(fit))
  for (i in seq_len(nrow(vc))) cat(sprintf("var %s %.10g\n", vc$grp[i], vc$vcov[i]))
  co <- summary(fit, ddf = "Satterthwaite")$coefficients
  for (i in seq_len(nrow(co))) cat(sprintf("fixef %s est %.10g se %.10g df %.10g t %.10g p %.10g\n",
    rownames(co)[i], co[i, 1], co[i, 2], co[i, 3], co[i, 4], co[i, 5]))
  kr <- summary(fit, ddf = "Kenward-Roger")$coefficients
  for (i in seq_len(nrow(kr))) cat(sprintf("kenward_roger %s df %.10g\n", rownames(kr)[i], kr[i, 3]))
}
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
a <- subset(d, dataset == "A")
show("A: y ~ condition + (1|reader) + (1|reader:condition) + (1|case)",
     lmer(y ~ condition + (1 | reader) + (1 | reader:condition) + (1 | case), data = a, REML = TRUE, control = ctl))
b <- subset(d, dataset == "B")
show("B: y ~ condition + (1|reader) + (1|reader:condition) + (1|case) + (1|case:condition)",
     lmer(y ~ condition + (1 | reader) + (1 | reader:condition) + (1 | case) + (1 | case:condition),
          data = b, REML = TRUE, control = ctl))
cc <- subset(d, dataset == "C")
show("C: y ~ 1 + (1|case) + (1|reader)",
     lmer(y ~ 1 + (1 | case) + (1 | reader), data = cc, REML = TRUE, control = ctl))

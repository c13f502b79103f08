"""Statistics for the satisfaction barometer: pure functions over tidy pandas frames.

Modules
-------
estimates
    Weighted means, proportions and totals with linearised SEs and suppression flags.
weighting
    Raking to population margins.
trends
    Change between periods, trend slopes and multiple-testing control.
drivers
    Key-driver analysis: relative importance (LMG, relative weights), ordinal logit,
    penalty-reward contrasts.
ipa
    Importance-performance quadrants (over-quality and under-served attributes).
segments
    Publics that are significantly less satisfied than the rest.
redeploy
    Recommendations per service (reinforce, reduce, maintain, watch), the
    allocation-satisfaction elasticity, and the even versus strategic budget cut.

The package never imports the web application or the database layer.
"""

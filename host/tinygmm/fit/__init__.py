"""Fitting on the host: the EM estimator, its covariance maths, k-means seeding, choosing k."""

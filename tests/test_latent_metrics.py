"""Latent-space metrics: importance-weighted NLL, KL, active units, mutual information."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from scratchvae.models import latent_metrics as lm


def test_gaussian_log_density_matches_scipy():
    rng = np.random.default_rng(0)
    z, mean, logvar = rng.standard_normal((3, 5, 4))
    expected = stats.norm(mean, np.exp(0.5 * logvar)).logpdf(z).sum(axis=1)
    np.testing.assert_allclose(lm.gaussian_log_density(z, mean, logvar), expected)
    np.testing.assert_allclose(lm.standard_normal_log_density(z), stats.norm().logpdf(z).sum(axis=1))


def test_kl_matches_the_density_ratio_expectation():
    rng = np.random.default_rng(1)
    mean, logvar = np.array([[0.5, -1.0]]), np.array([[-0.5, 0.3]])
    z = mean + np.exp(0.5 * logvar) * rng.standard_normal((200_000, 2))
    mc = (lm.gaussian_log_density(z, mean, logvar) - lm.standard_normal_log_density(z)).mean()
    assert lm.gaussian_kl(mean, logvar)[0] == pytest.approx(mc, abs=0.01)
    assert lm.gaussian_kl(np.zeros((1, 3)), np.zeros((1, 3)))[0] == 0.0


def test_iw_estimate_is_exact_when_q_is_the_true_posterior():
    """Linear-Gaussian model x = z + noise(s): log p(x) is known, and with q = p(z|x) every weight is p(x)."""
    rng = np.random.default_rng(2)
    s2 = 0.5
    x = rng.standard_normal((6, 2)) * 1.5
    post_mean, post_var = x / (1 + s2), np.full((6, 2), s2 / (1 + s2))
    z = post_mean[:, None] + np.sqrt(post_var)[:, None] * rng.standard_normal((6, 7, 2))
    log_px_given_z = stats.norm(z, math.sqrt(s2)).logpdf(x[:, None]).sum(axis=-1)
    iw = lm.importance_weighted_log_likelihood(log_px_given_z, z, post_mean, np.log(post_var))
    np.testing.assert_allclose(iw, stats.norm(0, math.sqrt(1 + s2)).logpdf(x).sum(axis=1))


def test_iw_estimate_tightens_with_more_samples():
    """With a poor q, K=1 averages to the ELBO; more samples move up towards log p(x)."""
    rng = np.random.default_rng(3)
    s2, x = 0.5, np.array([[1.0, -2.0]])
    # q(z | x) is the prior N(0, I) itself, far from the posterior
    truth = stats.norm(0, math.sqrt(1 + s2)).logpdf(x).sum()

    def estimate(K, reps=400):
        z = rng.standard_normal((reps, K, 2))
        lpz = stats.norm(z, math.sqrt(s2)).logpdf(x[:, None]).sum(axis=-1)
        return lm.importance_weighted_log_likelihood(lpz, z, np.zeros((reps, 2)), np.zeros((reps, 2))).mean()

    k1, k100 = estimate(1), estimate(100)
    assert k1 < k100 < truth + 0.05
    assert truth - k100 < 0.25 * (truth - k1)


def test_active_units_counts_units_whose_mean_varies():
    rng = np.random.default_rng(4)
    mean = np.column_stack([rng.standard_normal(1000), 0.05 * rng.standard_normal(1000), np.full(1000, 3.0)])
    n, variance = lm.active_units(mean)
    assert n == 1
    np.testing.assert_allclose(variance, mean.var(axis=0))


def test_mutual_information_of_separated_and_of_collapsed_posteriors():
    rng = np.random.default_rng(5)
    n = 2000
    # far-apart narrow posteriors: z identifies x, I = log N (the most it can be), up to sampling noise
    mean = 1000.0 * rng.standard_normal((n, 2))
    assert lm.mutual_information(mean, np.full((n, 2), -4.0), rng) == pytest.approx(math.log(n), abs=0.07)
    # every posterior the same: z says nothing about x, I ~= 0 (the estimate's noise only)
    collapsed = lm.mutual_information(np.zeros((2000, 2)), np.zeros((2000, 2)), rng)
    assert abs(collapsed) < 0.05
    # per-batch (He et al.): log(batch) at most
    assert lm.mutual_information(mean, np.full((n, 2), -4.0), rng, batch_size=10) == pytest.approx(
        math.log(10), abs=0.07
    )


def test_mutual_information_never_exceeds_the_average_kl_by_much():
    rng = np.random.default_rng(6)
    mean, logvar = 0.8 * rng.standard_normal((1500, 3)), np.full((1500, 3), -1.0)
    mi = lm.mutual_information(mean, logvar, rng)
    assert 0 < mi <= lm.gaussian_kl(mean, logvar).mean() + 0.05

"""How much a VAE uses its latent space: importance-weighted NLL, active units, mutual information.

Pure functions of host NumPy arrays (float64 for the sums), shared by every model's evaluation.

    log N(z; mean, exp(logvar)) = -1/2 sum_j [log 2pi + logvar_j + (z_j - mean_j)^2 / exp(logvar_j)]

* Importance-weighted log-likelihood (Burda et al. 2016; He et al. 2019 use K=500):
      log p(x) ~= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),    z_k ~ q(z|x)
  a lower bound that tightens to log p(x) as K grows (K=1 is the ELBO in expectation).
* Active units (Burda et al. 2016): unit j is active when Cov_x(E_q[z_j]) > 0.01, the variance
  over the data of the posterior mean.
* Mutual information I(x; z) under q(x, z) = p_data(x) q(z|x) (He et al. 2019):
      I = E_x E_q(z|x)[log q(z|x)] - E_z[log q(z)],    q(z) ~= (1/N) sum_n q(z|x_n)
  with one z sample per x.  He et al. take the aggregate q(z) over each batch; with
  ``batch_size=None`` it is taken over the whole split, the less biased estimate.
"""

from __future__ import annotations

import math

import numpy as np

LOG_2PI = math.log(2.0 * math.pi)
ACTIVE_THRESHOLD = 0.01


def gaussian_log_density(z: np.ndarray, mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """log N(z; mean, diag(exp(logvar))) summed over the last axis; shapes broadcast."""
    return -0.5 * (LOG_2PI + logvar + (z - mean) ** 2 * np.exp(-logvar)).sum(axis=-1)


def standard_normal_log_density(z: np.ndarray) -> np.ndarray:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * (LOG_2PI + z * z).sum(axis=-1)


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log sum exp(a) along ``axis``, stable for large |a|."""
    m = np.max(a, axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def importance_weighted_log_likelihood(
    log_px_given_z: np.ndarray, z: np.ndarray, mean: np.ndarray, logvar: np.ndarray
) -> np.ndarray:
    """(N,) estimates of log p(x) from K samples each.

    log_px_given_z (N, K)   log p(x_n | z_nk)
    z (N, K, Z)             the samples, drawn from q(z | x_n)
    mean, logvar (N, Z)     the parameters of q(z | x_n)
    """
    log_w = (
        log_px_given_z + standard_normal_log_density(z) - gaussian_log_density(z, mean[:, None, :], logvar[:, None, :])
    )
    return logsumexp(log_w, axis=1) - math.log(log_w.shape[1])


def gaussian_kl(mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """(N,) KL(N(mean, exp(logvar)) || N(0, I)), summed over the latent units."""
    return -0.5 * (1.0 + logvar - mean * mean - np.exp(logvar)).sum(axis=-1)


def active_units(mean: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> tuple[int, np.ndarray]:
    """The number of units whose posterior mean varies over the data by more than ``threshold``,
    and each unit's variance Cov_x(E_q[z_j]) (Z,)."""
    variance = np.asarray(mean, dtype=np.float64).var(axis=0)
    return int((variance > threshold).sum()), variance


def mutual_information(
    mean: np.ndarray, logvar: np.ndarray, rng: np.random.Generator, batch_size: int | None = None, chunk: int = 512
) -> float:
    """He et al.'s estimate of I(x; z) in nats, from the posteriors of N examples (N, Z).

    ``batch_size`` None: q(z) is the mixture of all N posteriors; else of each batch's
    (examples in order), and the batch estimates are averaged weighted by their sizes.
    """
    mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
    n = len(mean)
    size = n if batch_size is None else batch_size
    total = 0.0
    for start in range(0, n, size):
        m, lv = mean[start : start + size], logvar[start : start + size]
        b, d = m.shape
        z = m + np.exp(0.5 * lv) * rng.standard_normal(m.shape)
        neg_entropy = (-0.5 * d * LOG_2PI - 0.5 * (1.0 + lv).sum(axis=1)).mean()  # E_q log q(z|x)
        log_qz = np.empty(b)
        for i in range(0, b, chunk):  # log q(z_i) = logsumexp_j log q(z_i | x_j) - log b
            dens = gaussian_log_density(z[i : i + chunk, None, :], m[None], lv[None])
            log_qz[i : i + chunk] = logsumexp(dens, axis=1) - math.log(b)
        total += b * (neg_entropy - log_qz.mean())
    return total / n

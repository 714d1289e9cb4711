"""Queueing and traffic statistics of the serving model (:mod:`.serving`): normal and
lognormal quantiles, the M/G/c wait's tail, speculative decoding's tokens per step."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def norm_ppf(p):
    """The standard normal quantile at ``p`` (0 < p < 1), Acklam's rational approximation
    (relative error below 1.2e-9)."""
    a0, a1, a2 = -3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02
    a3, a4, a5 = 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00
    b0, b1, b2 = -5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02
    b3, b4 = 6.680131188771972e01, -1.328068155288572e01
    c0, c1, c2 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00
    c3, c4, c5 = -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00
    d0, d1, d2, d3 = 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, \
        3.754408661907416e00
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2.0 * math.log(p))
        return (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / \
            ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0)
    if p > 1.0 - lo:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        return -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / \
            ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0)
    q = p - 0.5
    r = q * q
    return (((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q / \
        (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1.0)


@njit(cache=True)
def lognormal_quantile(mean, cv, p):
    """The p-quantile of a lognormal length with mean ``mean`` and coefficient of variation
    ``cv`` (``cv = 0``: the mean)."""
    if cv <= 0.0:
        return mean
    s2 = math.log(1.0 + cv * cv)
    return math.exp(math.log(mean) - 0.5 * s2 + math.sqrt(s2) * norm_ppf(p))


@njit(cache=True)
def erlang_c(c, a):
    """Probability that an arrival waits in an M/M/c queue with offered load ``a = lambda /
    mu`` (< c), by the Erlang B recursion (stable for thousands of servers)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


@njit(cache=True)
def wait_quantile(c, mu, lam, scv, p):
    """The p-quantile of the wait in an M/G/c queue (``c`` servers of rate ``mu``, arrivals
    ``lam``, service-time squared coefficient of variation ``scv``); inf when ``lam >= c mu``."""
    if lam <= 0.0:
        return 0.0
    if lam >= c * mu:
        return np.inf
    pw = erlang_c(c, lam / mu)
    if pw <= 1.0 - p:
        return 0.0
    return math.log(pw / (1.0 - p)) * (1.0 + scv) / (2.0 * (c * mu - lam))


@njit(cache=True)
def spec_tokens(k, a):
    """Mean tokens a speculative step emits per sequence (``k`` drafts, acceptance ``a``)."""
    if k <= 0:
        return 1.0
    if a >= 1.0:
        return k + 1.0
    return (1.0 - a ** (k + 1.0)) / (1.0 - a)


@njit(cache=True)
def spec_low_tokens(k, a, p):
    """Tokens a step emits at the (1 - p)-quantile (the few tokens of the slow steps that the
    ITL's p-quantile sees): the smallest j with P(accepted <= j) >= 1 - p."""
    if k <= 0 or a <= 0.0:
        return 1.0
    if a >= 1.0:
        return k + 1.0
    j = math.ceil(math.log(p) / math.log(a))
    return float(min(max(j, 1), k + 1))

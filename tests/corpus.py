"""The verdict corpus: functions with known gradients in every form gpucheck accepts.

Each case builds, for one seed, dtype and size, the point x, the correct
gradient (float64 NumPy, computed independently of f), the forms of f
that apply (a plain callable, a batched function, a kernel function with
float64 accumulators over terms in x's dtype, the built-in layers), and the
verdict a correct gradient must get ('pass', or 'inconclusive' where no
step can decide).  Planted bugs change one entry by a fraction of max|g|,
flip a sign or scale the whole gradient; they must fail wherever the
correct gradient passes.

Used by tests/test_verdict_corpus.py (a CI-sized slice) and
bench/verdict_corpus.py (the full sweep over many seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import gpucheck
from gpucheck import layers as L

try:
    import ml_dtypes

    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
    BFLOAT16 = None


# ---------------------------------------------------------------- kernels
# float64 accumulators (the literal 0.0) over terms computed in x's dtype

def softmax_ce_k(z, y):
    s = 0.0
    for b in range(z.shape[0]):
        m = z[b, 0]
        for c in range(1, z.shape[1]):
            if z[b, c] > m:
                m = z[b, c]
        e = 0.0
        for c in range(z.shape[1]):
            e += math.exp(z[b, c] - m)
        s += math.log(e) + m - z[b, y[b]]
    return s / z.shape[0]


def tanh_k(x, w):
    s = 0.0
    xf = x.flat
    wf = w.flat
    for i in range(x.size):
        s += math.tanh(xf[i]) * wf[i]
    return s


def lse_k(x):
    xf = x.flat
    m = xf[0]
    for i in range(1, x.size):
        if xf[i] > m:
            m = xf[i]
    s = 0.0
    for i in range(x.size):
        s += math.exp(xf[i] - m)
    return math.log(s) + m


# ------------------------------------------------------------------ cases

@dataclass
class Case:
    """One function at one point, in every form that applies."""

    name: str
    x: np.ndarray
    grad: np.ndarray
    forms: dict
    expect: str = "pass"
    #: the planted one-entry bug fraction that must fail (None: no bug test)
    bug: float | None = 0.01
    note: str = ""
    extra: dict = field(default_factory=dict)


def _bug_fraction(dt) -> float:
    """Smallest one-entry error (share of max|g|) that must fail in dtype ``dt``."""
    name = np.dtype(dt).name
    return {"float64": 0.005, "float32": 0.005, "float16": 0.02, "bfloat16": 0.15}[name]


def _layer_forms(layer, with_kernel=True):
    forms = {"callable": layer.f, "batched": layer.batched}
    if with_kernel and layer.kernel is not None:
        forms["kernel"] = layer.kernel
    return forms


def mse(rng, dt, n):
    t = rng.normal(size=(n, n)).astype(dt)
    x = rng.normal(size=(n, n)).astype(dt)
    layer = L.mse(t)
    return Case("mse", x, layer.grad(x), _layer_forms(layer))


def dense(rng, dt, n):
    a = rng.normal(size=(16, n)).astype(dt)
    t = rng.normal(size=(16, n)).astype(dt)
    x = (rng.normal(size=(n, n)) / np.sqrt(n)).astype(dt)
    layer = L.dense(a, t)
    return Case("dense", x, layer.grad(x), _layer_forms(layer))


def softmax_ce(rng, dt, n):
    y = rng.integers(0, n, size=n)
    x = (3 * rng.normal(size=(n, n))).astype(dt)
    layer = L.softmax_cross_entropy(y)
    forms = _layer_forms(layer)
    forms["kernel"] = gpucheck.kernel(softmax_ce_k, y.astype(np.int64))
    return Case("softmax_ce", x, layer.grad(x), forms)


def tanh(rng, dt, n):
    w = rng.normal(size=(n, n)).astype(dt)
    x = (1.5 * rng.normal(size=(n, n))).astype(dt)
    layer = L.tanh_sum(w)
    forms = _layer_forms(layer)
    forms["kernel"] = gpucheck.kernel(tanh_k, w)
    return Case("tanh", x, layer.grad(x), forms)


def layer_norm(rng, dt, n):
    w = rng.normal(size=(n, n)).astype(dt)
    x = (2 * rng.normal(size=(n, n)) + 1).astype(dt)
    layer = L.layer_norm(w)
    return Case("layer_norm", x, layer.grad(x), _layer_forms(layer))


def logsumexp_large(rng, dt, n):
    shift = 1000.0 if np.dtype(dt) == np.float64 else 100.0
    x = (5 * rng.normal(size=(n, n)) + shift).astype(dt)
    layer = L.logsumexp()
    forms = _layer_forms(layer)
    forms["kernel"] = gpucheck.kernel(lse_k)
    return Case("logsumexp_large", x, layer.grad(x), forms)


def batchnorm(rng, dt, n):
    """sum(w * (x - mean) / sqrt(var + eps)), statistics over the batch axis 0."""
    w = rng.normal(size=(n, n)).astype(dt)
    eps = 1e-3

    def fb(xs):
        mu = xs.mean(axis=1, keepdims=True)
        c = xs - mu
        var = (c * c).mean(axis=1, keepdims=True)
        return (c / np.sqrt(var + xs.dtype.type(eps)) * w[None]).reshape(xs.shape[0], -1).sum(axis=1)

    x = (rng.normal(size=(n, n)) * 2 + 0.5).astype(dt)
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=0)
    c = x64 - mu
    var = (c * c).mean(axis=0)
    s = np.sqrt(var + eps)
    y = c / s
    g = w.astype(np.float64)
    grad = (g - g.mean(axis=0) - y * (g * y).mean(axis=0)) / s
    return Case("batchnorm", x, grad, {"callable": lambda v: fb(v[None])[0],
                                       "batched": gpucheck.batched(fb)})


def relu_kinks(rng, dt, n):
    """sum(w * relu(x)) with a row of exact zeros: the kink, with subgradient 0."""
    w = rng.normal(size=(n, n)).astype(dt)
    x = rng.normal(size=(n, n)).astype(dt)
    x[0, : max(1, n // 2)] = 0

    def fb(xs):
        return (np.maximum(xs, 0) * w[None]).reshape(xs.shape[0], -1).sum(axis=1)

    grad = w.astype(np.float64) * (x > 0)
    return Case("relu_kinks", x, grad, {"callable": lambda v: fb(v[None])[0],
                                        "batched": gpucheck.batched(fb)}, bug=None,
                extra={"w": w.astype(np.float64)})


def abs_kinks(rng, dt, n):
    w = np.abs(rng.normal(size=(n, n))).astype(dt) + dt(0.5)
    x = rng.normal(size=(n, n)).astype(dt)
    x[1 % n, :] = 0

    def fb(xs):
        return (np.abs(xs) * w[None]).reshape(xs.shape[0], -1).sum(axis=1)

    grad = w.astype(np.float64) * np.sign(x)
    return Case("abs_kinks", x, grad, {"callable": lambda v: fb(v[None])[0],
                                       "batched": gpucheck.batched(fb)}, bug=None,
                extra={"w": w.astype(np.float64)})


def maxpool_ties(rng, dt, n):
    """sum of w_k * max over 2x2 windows, with ties: the gradient goes to one tied maximum."""
    n2 = max(2, n - n % 2)
    w = rng.normal(size=(n2 // 2, n2 // 2)).astype(dt)
    x = np.round(rng.normal(size=(n2, n2)) * 2).astype(dt)  # integers: ties are common
    x[0, 0] = x[0, 1] = x[1, 0] = x[1, 1] = 3  # at least one window all tied

    def fb(xs):
        b = xs.shape[0]
        win = xs.reshape(b, n2 // 2, 2, n2 // 2, 2).max(axis=(2, 4))
        return (win * w[None]).reshape(b, -1).sum(axis=1)

    x64 = x.astype(np.float64)
    grad = np.zeros_like(x64)
    every = np.zeros_like(x64)
    for i in range(n2 // 2):
        for j in range(n2 // 2):
            block = x64[2 * i:2 * i + 2, 2 * j:2 * j + 2]
            k = int(np.argmax(block))
            grad[2 * i + k // 2, 2 * j + k % 2] = w[i, j]
            every[2 * i:2 * i + 2, 2 * j:2 * j + 2] = w[i, j] * (block == block.max())
    return Case("maxpool_ties", x, grad, {"callable": lambda v: fb(v[None])[0],
                                          "batched": gpucheck.batched(fb)}, bug=None,
                extra={"every_tie": every})


def coarse_output(rng, dt, n):
    """A quadratic loss whose value f rounds to 3 decimals."""
    t = rng.normal(size=(n, n))
    x = rng.normal(size=(n, n)).astype(dt)

    def fb(xs):
        d = xs.astype(np.float64) - t[None]
        return np.round((d * d).reshape(xs.shape[0], -1).sum(axis=1) / n, 3)

    grad = 2 * (x.astype(np.float64) - t) / n
    return Case("coarse_output", x, grad, {"callable": lambda v: fb(v[None])[0],
                                           "batched": gpucheck.batched(fb)}, bug=0.05)


def offset(rng, dt, n):
    """A float32-style MSE plus a large constant: a decisive step is larger than the default."""
    t = rng.normal(size=(n, n)).astype(dt)
    x = rng.normal(size=(n, n)).astype(dt)
    big = dt(1e4)

    def fb(xs):
        d = xs - t[None]
        return (d * d).reshape(xs.shape[0], -1).sum(axis=1) + big

    grad = 2 * (x.astype(np.float64) - t.astype(np.float64))
    return Case("offset", x, grad, {"callable": lambda v: fb(v[None])[0],
                                    "batched": gpucheck.batched(fb)})


def mean_rows(rng, dt, n):
    """mean over 4096 rows of (r . w)^2 / 2 in x's dtype: small gradient entries."""
    R = rng.normal(size=(4096, n)).astype(dt)

    def fb(ws):
        z = ws @ R.T
        return (z * z).mean(axis=1) / 2

    x = rng.normal(size=n).astype(dt)
    R64 = R.astype(np.float64)
    grad = R64.T @ (R64 @ x.astype(np.float64)) / R.shape[0]
    return Case("mean_rows", x, grad, {"callable": lambda v: fb(v[None])[0],
                                       "batched": gpucheck.batched(fb)})


def tiny_x(rng, dt, n):
    x = (rng.normal(size=n) * 1e-30).astype(dt) if np.dtype(dt) == np.float64 else \
        (rng.normal(size=n) * 1e-20).astype(dt)

    def fb(xs):
        return np.sin(xs).sum(axis=1) + xs.sum(axis=1)

    grad = np.cos(x.astype(np.float64)) + 1
    return Case("tiny_x", x, grad, {"callable": lambda v: fb(v[None])[0],
                                    "batched": gpucheck.batched(fb)})


def huge_x(rng, dt, n):
    """sin at x ~ 1e30: no representable step resolves f; the only honest answer is inconclusive."""
    x = (rng.uniform(1, 2, size=n) * 1e30).astype(dt)

    def fb(xs):
        return np.sin(xs.astype(np.float64)).sum(axis=1)

    grad = np.cos(x.astype(np.float64))
    return Case("huge_x", x, grad, {"callable": lambda v: fb(v[None])[0],
                                    "batched": gpucheck.batched(fb)}, expect="inconclusive", bug=None)


def nondeterministic(rng, dt, n):
    """A quadratic plus a random term larger than any step can resolve: inconclusive, and named."""
    state = np.random.default_rng(int(rng.integers(1 << 30)))

    def fb(xs):
        return (xs.astype(np.float64) ** 2).sum(axis=1) + 0.1 * state.normal(size=xs.shape[0])

    x = rng.normal(size=n).astype(dt)
    return Case("nondeterministic", x, 2 * x.astype(np.float64),
                {"callable": lambda v: fb(v[None])[0], "batched": gpucheck.batched(fb)},
                expect="inconclusive", bug=None)


def unordered_sum(rng, dt, n):
    """A sum in a different order on every call (like GPU atomics): rounding-level nondeterminism."""
    state = np.random.default_rng(int(rng.integers(1 << 30)))
    w = rng.normal(size=n).astype(dt)

    def f(v):
        terms = (np.sin(v) * w)[state.permutation(v.size)]
        s = dt(0)
        for term in terms:
            s = dt(s + term)
        return s

    x = rng.normal(size=n).astype(dt)
    grad = np.cos(x.astype(np.float64)) * w
    return Case("unordered_sum", x, grad, {"callable": f})


SMOOTH = [mse, dense, softmax_ce, tanh, layer_norm, logsumexp_large, batchnorm]
SPECIAL = [relu_kinks, abs_kinks, maxpool_ties, coarse_output, offset, mean_rows, tiny_x, huge_x,
           nondeterministic, unordered_sum]
LOW_PRECISION = [mse, tanh, softmax_ce, dense]


def cases(seed: int, dtype, n: int, builders=None):
    """Every case of ``builders`` (default: all) for one seed, dtype and size."""
    for build in builders or SMOOTH + SPECIAL:
        rng = np.random.default_rng([seed, n, sum(build.__name__.encode())])
        with np.errstate(over="ignore"):
            c = build(rng, np.dtype(dtype).type, n)
        if c.bug is not None:
            c.bug = max(c.bug, _bug_fraction(dtype)) if c.name in ("coarse_output",) \
                else _bug_fraction(dtype)
        yield c


def one_entry_bug(g: np.ndarray, frac: float, seed: int) -> tuple:
    """g with one entry of at least median size moved by ``frac`` of max|g|."""
    rng = np.random.default_rng(seed)
    mag = np.abs(g).ravel()
    big = np.flatnonzero(mag >= np.median(mag))
    j = int(rng.choice(big))
    bad = g.copy().ravel()
    bad[j] += frac * float(mag.max()) * (1 if rng.random() < 0.5 else -1)
    return bad.reshape(g.shape), np.unravel_index(j, g.shape)


def bugs(c: Case, seed: int) -> dict:
    """Planted bugs that must fail where the correct gradient passes."""
    g = c.grad
    out = {}
    if c.bug is not None:
        out[f"one entry {c.bug:.1%}"] = one_entry_bug(g, c.bug, seed)[0]
        sign = g.copy().ravel()
        j = int(np.argmax(np.abs(sign)))
        sign[j] = -sign[j]
        out["one sign"] = sign.reshape(g.shape)
        out["factor 2"] = 2.0 * g
        out["zero"] = np.zeros_like(g)
    if "every_tie" in c.extra:
        out["gradient to every tied maximum"] = c.extra["every_tie"]
    if c.name in ("relu_kinks", "abs_kinks"):
        # entry 0 sits on the kink for relu: outside [min(0, w), max(0, w)];
        # for abs it is an ordinary entry, made wrong
        bad = g.copy()
        w0 = float(c.extra["w"].flat[0])
        bad.flat[0] = -np.sign(w0) * (abs(w0) + 1.0) if c.name == "relu_kinks" \
            else 3.0 * abs(bad.flat[0]) + 1.0
        out["outside the subgradient"] = bad
    return out

"""The verdict corpus: functions with known gradients in every form gpucheck accepts.

Each case builds, for one seed, dtype and size, the point x, the correct
gradient (float64 NumPy, computed independently of f), the forms of f
that apply (a plain callable, a batched function, a kernel function with
float64 accumulators over terms in x's dtype, a row-wise function, the
built-in layer evaluated by delta), and the verdict a correct gradient must
get ('pass', or 'inconclusive' where no step can decide).  Planted bugs
change one entry by a fraction of max|g|, flip a sign, scale or transpose
the gradient; they must fail wherever the correct gradient passes.  Cases
of several inputs (a weight and a bias whose gradients differ 1000-fold)
plant every bug in each input, at a share of that input's own max|g|.

Used by tests/test_verdict_corpus.py (a CI-sized slice) and
bench/verdict_corpus.py (the full sweep over many seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import gpucheck
from delta_cases import row_sse
from gpucheck import layers as L

try:
    import ml_dtypes

    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
    BFLOAT16 = None


# ---------------------------------------------------------------- kernels
# float64 accumulators (the literal 0.0) over terms computed in x's dtype

def readme_mse_k(x, t):
    """The README's kernel example: sum((x - t)**2) / rows."""
    s = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            d = x[i, j] - t[i, j]
            s += d * d
    return s / x.shape[0]


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


# ------------------------------------------------------------ row functions
# f(x) = scale * sum_r fn(x[r], ...): float64 accumulators over x's dtype

def ce_row(z, y):
    m = z[0]
    for c in range(1, z.shape[0]):
        if z[c] > m:
            m = z[c]
    e = 0.0
    for c in range(z.shape[0]):
        e += math.exp(z[c] - m)
    return math.log(e) + m - z[y]


def layer_norm_row(row, w):
    n = row.shape[0]
    mu = 0.0
    for j in range(n):
        mu += row[j]
    mu /= n
    v = 0.0
    for j in range(n):
        c = row[j] - mu
        v += c * c
    inv = 1.0 / math.sqrt(v / n + 1e-5)
    s = 0.0
    for j in range(n):
        s += w[j] * (row[j] - mu) * inv
    return s


def dense_bias_k(w, b, a, t, s):
    # sum over the batch of (A @ W + s * b - T)**2, batch-mean
    acc = 0.0
    for r in range(a.shape[0]):
        for k in range(w.shape[1]):
            z = s[0] * b[k] - t[r, k]
            for i in range(w.shape[0]):
                z += a[r, i] * w[i, k]
            acc += z * z
    return acc / a.shape[0]


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


#: Forms compiled by numba (kernel, row-wise, layers by delta): float32 and float64 only.
COMPILED = ("kernel", "rowwise", "layer")


def _layer_forms(layer, with_kernel=True):
    # "layer": the built-in layer itself, evaluated by delta
    forms = {"callable": layer.f, "batched": layer.batched, "layer": layer}
    if with_kernel and layer.kernel is not None:
        forms["kernel"] = layer.kernel
    return forms


def mse(rng, dt, n):
    t = rng.normal(size=(n, n)).astype(dt)
    x = rng.normal(size=(n, n)).astype(dt)
    layer = L.mse(t)
    forms = _layer_forms(layer)
    forms["rowwise"] = gpucheck.rowwise(row_sse, t, scale=1.0 / n)
    return Case("mse", x, layer.grad(x), forms)


def dense(rng, dt, n):
    a = rng.normal(size=(16, n)).astype(dt)
    t = rng.normal(size=(16, n)).astype(dt)
    x = (rng.normal(size=(n, n)) / np.sqrt(n)).astype(dt)
    layer = L.dense(a, t)
    return Case("dense", x, layer.grad(x), _layer_forms(layer))


def dense_ce(rng, dt, n):
    """A dense layer under softmax cross-entropy, as a function of its weights."""
    a = rng.normal(size=(16, n)).astype(dt)
    y = rng.integers(0, n, size=16)
    x = (2 * rng.normal(size=(n, n)) / np.sqrt(n)).astype(dt)
    layer = L.dense(a, labels=y)
    return Case("dense_ce", x, layer.grad(x), _layer_forms(layer))


def softmax_ce(rng, dt, n):
    y = rng.integers(0, n, size=n)
    x = (3 * rng.normal(size=(n, n))).astype(dt)
    layer = L.softmax_cross_entropy(y)
    forms = _layer_forms(layer)
    forms["kernel"] = gpucheck.kernel(softmax_ce_k, y.astype(np.int64))
    forms["rowwise"] = gpucheck.rowwise(ce_row, y.astype(np.int64), scale=1.0 / n)
    return Case("softmax_ce", x, layer.grad(x), forms)


def conv2d_input(rng, dt, n):
    """A padded 3x3 convolution under a squared error, as a function of its input."""
    w = (rng.normal(size=(2, 2, 3, 3)) / 3).astype(dt)
    x = rng.normal(size=(1, 2, n, n)).astype(dt)
    t = rng.normal(size=(1, 2, n, n)).astype(dt)
    layer = L.conv2d(weight=w, target=t, padding=1)
    return Case("conv2d_input", x, layer.grad(x), _layer_forms(layer))


def conv2d_weight(rng, dt, n):
    """A stride-2 convolution against a cotangent, as a function of its weights."""
    inp = rng.normal(size=(2, 2, n + 2, n + 2)).astype(dt)
    x = (rng.normal(size=(2, 2, 3, 3)) / 3).astype(dt)
    oh = (n + 2 - 3) // 2 + 1
    c = rng.normal(size=(2, 2, oh, oh)).astype(dt)
    layer = L.conv2d(inputs=inp, cotangent=c, stride=2)
    return Case("conv2d_weight", x, layer.grad(x), _layer_forms(layer))


def _attention(rng, dt, n, wrt):
    lq, lk, d = max(2, n - 1), n, 3
    arrays = {"q": rng.normal(size=(2, lq, d)), "k": rng.normal(size=(2, lk, d)),
              "v": rng.normal(size=(2, lk, 2))}
    arrays = {k: v.astype(dt) for k, v in arrays.items()}
    c = rng.normal(size=(2, lq, 2)).astype(dt)
    x = arrays.pop(wrt)
    layer = L.attention(cotangent=c, **arrays)
    return Case(f"attention_{wrt}", x, layer.grad(x), _layer_forms(layer))


def attention_q(rng, dt, n):
    return _attention(rng, dt, n, "q")


def attention_k(rng, dt, n):
    return _attention(rng, dt, n, "k")


def attention_v(rng, dt, n):
    return _attention(rng, dt, n, "v")


def two_inputs(rng, dt, n):
    """A dense layer with a bias whose gradient is 1000 times smaller than the weights'.

    ``f(W, b) = sum((A @ W + s * b - T)**2) / B`` with s = 1e-3: a bias
    stored pre-scaled (or a layer whose bias path is damped).  A bug of 1%
    of b's max|g| is 1e-5 of W's.
    """
    scale = 1e-3
    a = rng.normal(size=(16, n)).astype(dt)
    t = rng.normal(size=(16, n)).astype(dt)
    w = (rng.normal(size=(n, n)) / np.sqrt(n)).astype(dt)
    b = rng.normal(size=n).astype(dt)
    sc = dt(scale)

    def fb(ws, bs):
        z = np.einsum("ri,bik->brk", a, ws) + sc * bs[:, None, :] - t[None]
        return (z * z).reshape(ws.shape[0], -1).sum(axis=1) / dt(a.shape[0])

    a64, t64 = a.astype(np.float64), t.astype(np.float64)
    z = a64 @ w.astype(np.float64) + scale * b.astype(np.float64) - t64
    dz = 2 * z / a.shape[0]
    grads = (a64.T @ dz, scale * dz.sum(axis=0))
    forms = {"callable": lambda w_, b_: fb(w_[None], b_[None])[0], "batched": gpucheck.batched(fb),
             "kernel": gpucheck.kernel(dense_bias_k, a, t, np.array([scale], dtype=dt))}
    return Case("two_inputs", (w, b), grads, forms)


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
    forms = _layer_forms(layer)
    forms["rowwise"] = gpucheck.rowwise(layer_norm_row, w)
    return Case("layer_norm", x, layer.grad(x), forms)


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
#: The built-in layers that only the layer (and its callable/batched) forms cover.
LAYERS = [dense_ce, conv2d_input, conv2d_weight, attention_q, attention_k, attention_v]
#: Several inputs whose gradients differ 1000-fold in scale.
SEVERAL = [two_inputs]
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
    """g with one entry of at least median size moved by ``frac`` of max|g| (of g alone)."""
    rng = np.random.default_rng(seed)
    mag = np.abs(g).ravel()
    big = np.flatnonzero(mag >= np.median(mag))
    j = int(rng.choice(big))
    bad = g.copy().ravel()
    bad[j] += frac * float(mag.max()) * (1 if rng.random() < 0.5 else -1)
    return bad.reshape(g.shape), np.unravel_index(j, g.shape)


def _array_bugs(g: np.ndarray, frac: float, seed: int) -> dict:
    out = {f"one entry {frac:.1%}": one_entry_bug(g, frac, seed)[0]}
    sign = g.copy().ravel()
    j = int(np.argmax(np.abs(sign)))
    sign[j] = -sign[j]
    out["one sign"] = sign.reshape(g.shape)
    out["factor 2"] = 2.0 * g
    out["zero"] = np.zeros_like(g)
    # a transposed gradient (dW^T for dW): where it differs from g by more
    # than the entry bug does, it must fail too
    if g.ndim == 2 and g.shape[0] == g.shape[1] and \
            np.max(np.abs(g - g.T)) > 2 * frac * np.max(np.abs(g)):
        out["transpose"] = g.T.copy()
    if g.ndim >= 3 and g.shape[-1] == g.shape[-2] and \
            np.max(np.abs(g - np.swapaxes(g, -1, -2))) > 2 * frac * np.max(np.abs(g)):
        out["transpose of the last two axes"] = np.swapaxes(g, -1, -2).copy()
    return out


def bugs(c: Case, seed: int) -> dict:
    """Planted bugs that must fail where the correct gradient passes.

    With several inputs, every bug is planted in each input alone, at a
    share of that input's own max|g|.
    """
    g = c.grad
    out = {}
    if c.bug is not None and isinstance(g, tuple):
        for k, gk in enumerate(g):
            for name, bad in _array_bugs(gk, c.bug, seed).items():
                out[f"input {k}: {name}"] = tuple(bad if i == k else gi for i, gi in enumerate(g))
        return out
    if c.bug is not None:
        out.update(_array_bugs(g, c.bug, seed))
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

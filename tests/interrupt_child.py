"""Long checks that announce when they are under way, for tests/test_interrupt.py.

Run as ``python tests/interrupt_child.py BACKEND FORM:N [FORM:N ...]``: for
each form of f (callable, batched, kernel) on an N x N MSE it starts the
numerical gradient (minutes of work), prints ``started FORM`` once the first
chunk is done, and ``interrupted FORM`` when Ctrl-C stops it (or ``finished
FORM`` if nothing did).
"""

from __future__ import annotations

import sys


def problem(form: str, n: int):
    import numpy as np

    import gpucheck
    from gpucheck.kernels import builtin

    t = np.linspace(-1.0, 1.0, n * n).reshape(n, n)
    x = t + 0.5
    if form == "callable":
        return (lambda v: float(np.sum((v - t) ** 2) / n)), x
    if form == "batched":
        return gpucheck.batched(builtin.mse_batched(t)), x
    return gpucheck.kernel(builtin.mse, t), x


def main(argv) -> int:
    import gpucheck

    backend, jobs = argv[0], argv[1:]
    for job in jobs:
        form, n = job.split(":")
        f, x = problem(form, int(n))
        started = []

        def progress(done, total, form=form, started=started):
            if done and not started:
                started.append(done)
                print(f"started {form} {done} of {total}", flush=True)

        try:
            gpucheck.numerical_gradient(f, x, backend=backend, progress=progress)
        except KeyboardInterrupt:
            print(f"interrupted {form}", flush=True)
        else:
            print(f"finished {form}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

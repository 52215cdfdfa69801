"""Fits the float32 polynomials of `log_cosh_tanh` (src/float.rs, `f32_impl::log_cosh_tanh_abs`).

Not part of the package or its tests; run it to check or regenerate the coefficients. Needs
mpmath besides NumPy (`pip install mpmath numpy`): `python tools/fit_log_cosh.py`.

Each polynomial is fitted to the correction term it supplies, weighted so that the fit's error
is relative to the final result, by Lawson's iteration (reweighted least squares, which tends to
the minimax fit). The coefficients are then fixed one at a time: coefficient k is rounded to
float32 and the rest refitted with it held, so the rounding of the lower coefficients is
compensated by the higher ones.
"""

import mpmath as mp
import numpy as np

mp.mp.dps = 40
SPLIT = 1.09  # below: polynomials in a²; from here: a + log1p(e^−2a) − ln 2
NODES = 3000


def lawson(basis, target, weight, iterations=80):
    """Coefficients minimising max |weight · (basis @ c − target)| (approximately), and that max."""
    u = np.full(len(target), 1.0 / len(target))
    for _ in range(iterations):
        sw = np.sqrt(u) * weight
        c, *_ = np.linalg.lstsq(basis * sw[:, None], target * sw, rcond=None)
        err = np.abs(weight * (basis @ c - target))
        u = u * err
        u /= u.sum()
    return c


def fit_float32(x, target, weight, degree):
    basis = np.vander(x, degree + 1, increasing=True)
    fixed = []
    for k in range(degree + 1):
        rest = target - (basis[:, :k] @ np.array(fixed) if k else 0.0)
        fixed.append(float(np.float32(lawson(basis[:, k:], rest, weight)[0])))
    return fixed, float(np.abs(weight * (basis @ np.array(fixed) - target)).max())


def chebyshev_like(hi):
    """Nodes on (0, hi], dense at both ends."""
    t = hi * (1 - np.cos(np.linspace(0, np.pi, NODES))) / 2
    return t[t > hi * 1e-6]


def main():
    a = chebyshev_like(SPLIT)
    mpa = [mp.mpf(v) for v in a]
    w = a * a
    log_cosh = np.array([float(mp.log(mp.cosh(v))) for v in mpa])
    tanh = np.array([float(mp.tanh(v)) for v in mpa])
    # log cosh a = a²/2 + w²·Q(w): Q's error enters the result times w².
    q_target = np.array([float((mp.log(mp.cosh(v)) - v * v / 2) / v**4) for v in mpa])
    q, q_err = fit_float32(w, q_target, w * w / log_cosh, 6)
    # tanh a = a + a·w·R(w).
    r_target = np.array([float((mp.tanh(v) - v) / v**3) for v in mpa])
    r, r_err = fit_float32(w, r_target, a * w / tanh, 7)
    # log1p(e) = e + e²·S(e) for e = e^−2a ≤ e^−2·SPLIT; the result is at least log cosh(SPLIT).
    e = chebyshev_like(float(np.exp(-2 * SPLIT)))
    s_target = np.array([float((mp.log1p(mp.mpf(v)) - mp.mpf(v)) / mp.mpf(v) ** 2) for v in e])
    s, s_err = fit_float32(e, s_target, e * e / float(mp.log(mp.cosh(SPLIT))), 3)
    for name, c, err in (("Q", q, q_err), ("R", r, r_err), ("S", s, s_err)):
        print(f"{name}: relative error {err:.2e}; {', '.join(str(np.float32(v)) for v in c)}")


if __name__ == "__main__":
    main()

"""Fits the float32 polynomials and ratios of src/float.rs: `EXP_POLY_F32` (the float32
exponential's), `ATANH` (the logistic functions' log(1 + e^−|x|), `f32_impl::Logistic::log1p_e`)
and those of `log_cosh_tanh` (`f32_impl::log_cosh_tanh_abs`).

Not part of the package or its tests; run it to check or regenerate the coefficients. Needs
mpmath besides NumPy (`pip install mpmath numpy`): `python tools/fit_float32.py`.

Each polynomial or ratio of two is fitted to the correction term it supplies, weighted so that the fit's error
is relative to the final result, by Lawson's iteration (reweighted least squares, which tends to
the minimax fit). The coefficients are then fixed one at a time: coefficient k is rounded to
float32 and the rest refitted with it held, so the rounding of the lower coefficients is
compensated by the higher ones.
"""

import mpmath as mp
import numpy as np

mp.mp.dps = 40
SPLIT = 1.09  # below: ratios of polynomials in a²; from here: a + log1p(e^−2a) − ln 2
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


def fit_rational_float32(x, target, weight, m, n, rounds=8):
    """Float32 P (degree m) and Q (degree n, Q(0) = 1) with P/Q ≈ target, and the weighted error.

    Loeb's linearisation: with Q from the previous round, P − target·Q is fitted by Lawson's
    iteration under weight/|Q|, so its error approaches that of P/Q. Coefficients are then fixed
    in float32 one at a time (P's first), the rest refitted around them.
    """
    basis = np.stack([x**i for i in range(m + 1)] + [-target * x**j for j in range(1, n + 1)], 1)
    den_powers = np.stack([x**j for j in range(1, n + 1)], 1)
    fixed = []
    for k in range(m + n + 1):
        rest = target - basis[:, :k] @ np.array(fixed) if k else target
        q = np.ones_like(x)
        for _ in range(rounds):
            c = np.concatenate([fixed, lawson(basis[:, k:], rest, weight / np.abs(q))])
            q = 1 + den_powers @ c[m + 1:]
        fixed.append(float(np.float32(c[k])))
    num, den = fixed[: m + 1], [1.0] + fixed[m + 1:]
    ratio = np.polyval(num[::-1], x) / np.polyval(den[::-1], x)
    return num, den, float(np.abs(weight * (ratio - target)).max())


def chebyshev_like(hi):
    """Nodes on (0, hi], dense at both ends."""
    t = hi * (1 - np.cos(np.linspace(0, np.pi, NODES))) / 2
    return t[t > hi * 1e-6]


def main():
    # e^r = 1 + r + r²·P(r) on |r| ≤ ln2/2 (widened a little for the rounding of the reduction);
    # P's error enters e^r times r².
    half = float(mp.log(2)) / 2 * 1.0001
    r = half * np.cos(np.linspace(0, np.pi, NODES))
    r = r[np.abs(r) > half * 1e-6]
    p_target = np.array([float((mp.exp(mp.mpf(v)) - 1 - mp.mpf(v)) / mp.mpf(v) ** 2) for v in r])
    p, p_err = fit_float32(r, p_target, r * r / np.exp(r), 4)
    # log(1 + f) = 2s + s·z·A(z) with s = f/(2 + f), z = s² ≤ 0.0295; A's error enters the result
    # (about 2s) times z/2.
    z = chebyshev_like(0.0295)
    atanh_target = np.array([float((2 * mp.atanh(mp.sqrt(v)) / mp.sqrt(v) - 2) / v) for v in map(mp.mpf, z)])
    atanh, atanh_err = fit_float32(z, atanh_target, z / 2, 2)
    a = chebyshev_like(SPLIT)
    mpa = [mp.mpf(v) for v in a]
    w = a * a
    log_cosh = np.array([float(mp.log(mp.cosh(v))) for v in mpa])
    tanh = np.array([float(mp.tanh(v)) for v in mpa])
    # log cosh a = a²/2 + w²·QN(w)/QD(w): the ratio's error enters the result times w².
    q_target = np.array([float((mp.log(mp.cosh(v)) - v * v / 2) / v**4) for v in mpa])
    qn, qd, q_err = fit_rational_float32(w, q_target, w * w / log_cosh, 2, 2)
    # tanh a = a + a·w·RN(w)/RD(w).
    r_target = np.array([float((mp.tanh(v) - v) / v**3) for v in mpa])
    rn, rd, r_err = fit_rational_float32(w, r_target, a * w / tanh, 1, 2)
    # log1p(e) = e + e²·S(e) for e = e^−2a ≤ e^−2·SPLIT; the result is at least log cosh(SPLIT).
    e = chebyshev_like(float(np.exp(-2 * SPLIT)))
    s_target = np.array([float((mp.log1p(mp.mpf(v)) - mp.mpf(v)) / mp.mpf(v) ** 2) for v in e])
    s, s_err = fit_float32(e, s_target, e * e / float(mp.log(mp.cosh(SPLIT))), 3)
    fits = (("EXP_POLY_F32", p, p_err), ("ATANH", atanh, atanh_err), ("QN/QD", qn + qd, q_err),
            ("RN/RD", rn + rd, r_err), ("S", s, s_err))
    for name, c, err in fits:
        print(f"{name}: relative error {err:.2e}; {', '.join(str(np.float32(v)) for v in c)}")


if __name__ == "__main__":
    main()

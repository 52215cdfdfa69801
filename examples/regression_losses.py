"""The regression losses MSE, MAE (L1), Huber and log-cosh, and their gradients, drawn over a range of
errors input − target: each value and derivative is computed by fastloss with reduction='none'.

Run: python examples/regression_losses.py
"""

import numpy as np

import fastloss as fl
from _common import plt, save

err = np.linspace(-3, 3, 601)
target = np.zeros_like(err)
LOSSES = {
    "MSE": (fl.mse_loss, {}),
    "MAE (L1)": (fl.l1_loss, {}),
    "Huber (delta=1)": (fl.huber_loss, {"delta": 1.0}),
    "log-cosh": (fl.log_cosh_loss, {}),
}

fig, (ax_v, ax_g) = plt.subplots(1, 2, figsize=(10, 3.8))
for label, (loss, opts) in LOSSES.items():
    value, grad = loss.value_and_grad(err, target, reduction="none", **opts)
    print(f"{label:16} at error 0.5: loss {value[350]:.4f}, gradient {grad[350]:.4f};  "
          f"at error 3: loss {value[-1]:.4f}, gradient {grad[-1]:.4f}")
    ax_v.plot(err, value, label=label)
    ax_g.plot(err, grad, label=label)
ax_v.set(title="loss", xlabel="input − target", ylim=(-0.1, 4.6))
ax_g.set(title="d loss / d input", xlabel="input − target")
for ax in (ax_v, ax_g):
    ax.axhline(0, color="gray", lw=0.5)
    ax.legend(fontsize=8)
save(fig, "regression_losses")

"""Linear regression trained three ways with fastloss alone: batch, mini-batch and stochastic
gradient descent.

The loss and its gradient with respect to the predictions come from `fl.mse_loss.value_and_grad`
(one fused pass); the chain rule through `pred = X @ w + b` is two NumPy lines; `fl.optim.SGD`
updates w and b in place. Run: python examples/linear_regression_gd.py
"""

import numpy as np

import fastloss as fl
from _common import plt, save

rng = np.random.default_rng(0)
n, d = 4000, 8
X = rng.standard_normal((n, d)).astype(np.float32)
true_w = rng.uniform(-2, 2, d).astype(np.float32)
y = X @ true_w + 0.5 + 0.1 * rng.standard_normal(n).astype(np.float32)


def train(batch_size, lr, epochs=20):
    print(f"batch size {batch_size}:")
    w, b = np.zeros(d, np.float32), np.zeros(1, np.float32)
    opt = fl.optim.SGD([w, b], lr=lr)
    history = []
    for epoch in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            pred = X[idx] @ w + b
            _, g = fl.mse_loss.value_and_grad(pred, y[idx])  # d loss / d pred
            opt.step([X[idx].T @ g, g.sum(keepdims=True)])    # chain rule to w and b
        history.append(float(fl.mse_loss(X @ w + b, y)))      # full-data loss after each epoch
        if epoch % 5 == 4 or epoch == epochs - 1:
            print(f"  epoch {epoch + 1:2d}: MSE {history[-1]:.5f}")
    return w, b, history


runs = {
    "batch (all 4000 rows, lr 0.5)": train(n, 0.5),
    "mini-batch (64 rows, lr 0.05)": train(64, 0.05),
    "stochastic (1 row, lr 0.002)": train(1, 0.002, epochs=5),
}
fig, ax = plt.subplots(figsize=(6, 4))
for label, (w, b, history) in runs.items():
    print(f"{label:32} final MSE {history[-1]:.5f}  |w - true_w| = {np.linalg.norm(w - true_w):.4f}  b = {b[0]:.3f}")
    ax.plot(range(1, len(history) + 1), history, marker="o", ms=3, label=label)
ax.set(yscale="log", xlabel="epoch", ylabel="MSE on all data", title="Linear regression: batch vs mini-batch vs SGD")
ax.legend()
save(fig, "linear_regression_gd")

"""The same linear regression (mini-batches of 64) trained with SGD, SGD + momentum, RMSprop, Adam
and AdamW from `fl.optim`, each with its own learning rate; prints and plots the loss per epoch.

Run: python examples/optimizers_compared.py
"""

import numpy as np

import fastloss as fl
from _common import plt, save

rng = np.random.default_rng(1)
n, d = 4000, 20
X = rng.standard_normal((n, d)).astype(np.float32) * np.linspace(0.1, 3, d).astype(np.float32)  # uneven scales
true_w = rng.uniform(-1, 1, d).astype(np.float32)
y = X @ true_w - 1.0 + 0.1 * rng.standard_normal(n).astype(np.float32)

OPTIMIZERS = {
    "SGD (lr 0.01)": lambda ps: fl.optim.SGD(ps, lr=0.01),
    "SGD momentum 0.9 (lr 0.003)": lambda ps: fl.optim.SGD(ps, lr=0.003, momentum=0.9),
    "RMSprop (lr 0.003)": lambda ps: fl.optim.RMSprop(ps, lr=0.003),
    "Adam (lr 0.01)": lambda ps: fl.optim.Adam(ps, lr=0.01),
    "AdamW (lr 0.01, wd 0.01)": lambda ps: fl.optim.AdamW(ps, lr=0.01, weight_decay=0.01),
}


def train(make_optimizer, epochs=15, batch=64):
    w, b = np.zeros(d, np.float32), np.zeros(1, np.float32)
    opt = make_optimizer([w, b])
    history = [float(fl.mse_loss(X @ w + b, y))]
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            _, g = fl.mse_loss.value_and_grad(X[idx] @ w + b, y[idx])
            opt.step([X[idx].T @ g, g.sum(keepdims=True)])
        history.append(float(fl.mse_loss(X @ w + b, y)))
    return history


fig, ax = plt.subplots(figsize=(6, 4))
for label, make in OPTIMIZERS.items():
    history = train(make)
    print(f"{label:28} MSE after epochs 1, 5, 15: {history[1]:.4f}, {history[5]:.4f}, {history[-1]:.5f}")
    ax.plot(history, label=label)
ax.set(yscale="log", xlabel="epoch", ylabel="MSE on all data", title="fl.optim on linear regression")
ax.legend(fontsize=8)
save(fig, "optimizers_compared")

"""Logistic regression (2 classes) and softmax regression (4 classes) trained with AdamW and a
linear warm-up followed by cosine decay (`SequentialLR(LinearLR, CosineAnnealingLR)`).

The losses and their gradients w.r.t. the logits come from fastloss in one call each:
`fl.binary_cross_entropy_with_logits.value_and_grad` and `fl.cross_entropy.value_and_grad`.

Run: python examples/logistic_softmax.py
"""

import numpy as np

import fastloss as fl
from _common import plt, save
from fastloss.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

rng = np.random.default_rng(2)


def fit(X, y, loss_fn, n_out, steps=300, batch=128, peak_lr=0.05, warmup=30):
    W = np.zeros((X.shape[1], n_out), X.dtype) if n_out > 1 else np.zeros(X.shape[1], X.dtype)
    b = np.zeros(n_out, X.dtype) if n_out > 1 else np.zeros(1, X.dtype)
    opt = fl.optim.AdamW([W, b], lr=peak_lr, weight_decay=1e-3)
    sched = SequentialLR(opt, [LinearLR(opt, start_factor=0.01, total_iters=warmup),
                               CosineAnnealingLR(opt, T_max=steps - warmup)], milestones=[warmup])
    losses, lrs = [], []
    for step in range(steps):
        idx = rng.integers(0, len(X), batch)
        loss, g = loss_fn(X[idx] @ W + b, y[idx])
        opt.step([X[idx].T @ g, g.sum(axis=0, keepdims=n_out == 1)])
        lrs.append(sched.get_last_lr()[0])
        sched.step()
        losses.append(loss)
        if step % 100 == 0 or step == steps - 1:
            print(f"  step {step:3d}: loss {loss:.4f}, lr {lrs[-1]:.4f}")
    return W, b, losses, lrs


# Two Gaussian blobs.
n = 2000
y2 = rng.integers(0, 2, n)
X2 = (rng.standard_normal((n, 2)) + np.where(y2[:, None] == 1, [1.5, 1.0], [-1.0, -1.5])).astype(np.float32)
print("logistic regression:")
w2, b2, loss2, lrs = fit(X2, y2.astype(np.float32), fl.binary_cross_entropy_with_logits.value_and_grad, 1)
acc2 = np.mean(((X2 @ w2 + b2) > 0) == (y2 == 1))

# Four blobs around a circle.
centers = np.array([[2, 0], [0, 2], [-2, 0], [0, -2]], np.float32)
y4 = rng.integers(0, 4, n)
X4 = (rng.standard_normal((n, 2)) * 0.8 + centers[y4]).astype(np.float32)
print("softmax regression:")
W4, b4, loss4, _ = fit(X4, y4, fl.cross_entropy.value_and_grad, 4)
acc4 = np.mean(np.argmax(X4 @ W4 + b4, axis=1) == y4)
print(f"training accuracy: logistic {acc2:.3f}, softmax {acc4:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
axes[0].plot(lrs)
axes[0].set(title="lr: linear warm-up, then cosine", xlabel="step")
axes[1].plot(loss2, label="logistic (BCE)")
axes[1].plot(loss4, label="softmax (CE)")
axes[1].set(title="mini-batch loss", xlabel="step", yscale="log")
axes[1].legend()
gx, gy = np.meshgrid(np.linspace(-5, 5, 200), np.linspace(-5, 5, 200))
grid = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
axes[2].contourf(gx, gy, np.argmax(grid @ W4 + b4, axis=1).reshape(gx.shape), alpha=0.25, cmap="tab10",
                 levels=np.arange(-0.5, 4), vmin=0, vmax=9)
axes[2].scatter(X4[:400, 0], X4[:400, 1], c=y4[:400], s=6, cmap="tab10", vmin=0, vmax=9)
axes[2].set(title=f"softmax regression regions (acc {acc4:.2f})")
save(fig, "logistic_softmax")

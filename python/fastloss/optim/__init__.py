"""Fused in-place optimizers with PyTorch's update rules (see API.md), and LR schedules.

```python
opt = fl.optim.AdamW([w, b], lr=1e-3, weight_decay=1e-2)
opt.step([grad_w, grad_b])          # w and b updated in place; one Rust call, GIL released once
sched = fl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
sched.step()
```
"""

from __future__ import annotations

from ._optimizer import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]

"""Type stubs for the compiled module (see src/python/)."""

import numpy as np

def pointwise(
    loss: str,
    input: np.ndarray,
    target: np.ndarray,
    var: np.ndarray | None,
    weight: np.ndarray | None,
    grad_weight: np.ndarray | None,
    grad_scale: float,
    sum: bool,
    value_out: np.ndarray | None,
    grad_out: np.ndarray | None,
    grad2_out: np.ndarray | None,
    param: float = 0.0,
    full: bool = False,
) -> float: ...
def sum(x: np.ndarray) -> float: ...
def simd_level() -> str: ...
def simd_detected() -> str: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def pointwise_mean(
    loss: str, param: float, inputs: tuple, want_value: bool, want_grad: bool, out: np.ndarray | None = None
) -> (
    np.floating
    | np.ndarray
    | tuple[np.ndarray, np.ndarray]
    | tuple[np.floating, np.ndarray | tuple[np.ndarray, np.ndarray]]
    | None
): ...
def optim_step(
    kind: str,
    groups: list[tuple[list[float], list[np.ndarray], list[np.ndarray | None], list[list[np.ndarray] | None], list[float]]],
) -> tuple[int, int]: ...

# Embedding family (src/python/embedding.rs): row-wise kernels over `nrows` rows of length `d`;
# each returns the float64 sum of the row losses when `sum`, writes per-row losses to `value_out`
# and the gradients (one buffer per differentiable input) to `grads_out`.
def triplet_margin(
    anchor: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    nrows: int,
    d: int,
    margin: float,
    p: float,
    eps: float,
    swap: bool,
    grad_output: np.ndarray | None,
    scale: float,
    sum: bool,
    value_out: np.ndarray | None,
    grads_out: list[np.ndarray] | None,
) -> float: ...
def contrastive(
    input1: np.ndarray,
    input2: np.ndarray,
    target: np.ndarray,
    nrows: int,
    d: int,
    margin: float,
    eps: float,
    grad_output: np.ndarray | None,
    scale: float,
    sum: bool,
    value_out: np.ndarray | None,
    grads_out: list[np.ndarray] | None,
) -> float: ...
def cosine_embedding(
    input1: np.ndarray,
    input2: np.ndarray,
    target: np.ndarray,
    nrows: int,
    d: int,
    margin: float,
    grad_output: np.ndarray | None,
    scale: float,
    sum: bool,
    value_out: np.ndarray | None,
    grads_out: list[np.ndarray] | None,
) -> float: ...
def ranking_elementwise(
    loss: str,
    input1: np.ndarray,
    target: np.ndarray,
    input2: np.ndarray | None,
    margin: float,
    grad_output: np.ndarray | None,
    scale: float,
    sum: bool,
    value_out: np.ndarray | None,
    grad_out: np.ndarray | None,
    grad2_out: np.ndarray | None,
) -> float: ...
def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray: ...
def set_buffer_cache_limit(limit: int) -> int: ...

# classification (src/python/classification.rs)
def classification(
    loss: str,
    input: np.ndarray,
    target: np.ndarray,
    pos_weight: np.ndarray | None,
    weight: np.ndarray | None,
    grad_weight: np.ndarray | None,
    grad_scale: float,
    sum: bool,
    value_out: np.ndarray | None,
    grad_out: np.ndarray | None,
    p1: float = 0.0,
    p2: float = 0.0,
) -> float: ...
def first_outside_unit(x: np.ndarray) -> int | None: ...

# multiclass (src/python/multiclass.rs)
def cross_entropy(
    input: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None,
    n: int,
    c: int,
    s: int,
    ignore_index: int,
    label_smoothing: float,
    mean: bool,
    scale: float,
    grad_output: np.ndarray | None,
    sum: bool,
    value_out: np.ndarray | None,
    grad_out: np.ndarray | None,
) -> tuple[float, float]: ...
def nll_loss(
    input: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None,
    n: int,
    c: int,
    s: int,
    ignore_index: int,
    mean: bool,
    scale: float,
    grad_output: np.ndarray | None,
    value_out: np.ndarray | None,
    grad_out: np.ndarray | None,
    grad_zeroed: bool = False,
) -> tuple[float, float]: ...
def multi_margin_loss(
    input: np.ndarray,
    target: np.ndarray,
    rows: int,
    c: int,
    p: int,
    margin: float,
    weight: np.ndarray | None,
    scale: float,
    grad_output: np.ndarray | None,
    value_out: np.ndarray | None,
    grad_out: np.ndarray | None,
) -> float: ...
def multilabel_soft_margin_loss(
    input: np.ndarray,
    target: np.ndarray,
    rows: int,
    c: int,
    weight: np.ndarray | None,
    scale: float,
    grad_output: np.ndarray | None,
    value_out: np.ndarray | None,
    grad_out: np.ndarray | None,
) -> float: ...

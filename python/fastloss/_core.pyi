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

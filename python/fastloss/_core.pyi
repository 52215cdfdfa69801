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

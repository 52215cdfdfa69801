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
    loss: str, param: float, inputs: tuple, want_value: bool, want_grad: bool
) -> np.floating | np.ndarray | tuple[np.floating, np.ndarray] | None: ...
def optim_step(
    kind: str,
    groups: list[tuple[list[float], list[np.ndarray], list[np.ndarray | None], list[list[np.ndarray] | None], list[float]]],
) -> tuple[int, int]: ...

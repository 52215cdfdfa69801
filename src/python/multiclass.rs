//! Bindings for the multiclass kernels (`crate::multiclass`).

use pyo3::prelude::*;

/// Adds this family's functions to `_core`.
pub(super) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}

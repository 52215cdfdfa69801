//! Fused in-place optimizer updates: one pass reads parameter, gradient and state once and writes them once.

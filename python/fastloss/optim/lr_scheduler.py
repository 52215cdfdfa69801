"""LR schedules (placeholder)."""

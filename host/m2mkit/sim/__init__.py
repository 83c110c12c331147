"""Simulators that stand in for hardware the virtual device cannot have."""

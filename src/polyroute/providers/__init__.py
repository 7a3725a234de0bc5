"""Adapters that speak each upstream dialect, behind one small Provider protocol."""

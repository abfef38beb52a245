"""LPTEM movie simulator with exact ground truth (pure compute, no sockets)."""

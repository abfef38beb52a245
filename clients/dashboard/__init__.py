"""``lptem dashboard``: the live pyqtgraph view of a running daemon (docs/dashboard.md)."""

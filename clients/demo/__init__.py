"""`lptem demo`: the whole live loop on synthetic particles, scored against truth."""

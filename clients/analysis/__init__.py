"""`lptem analyze`: offline trajectory statistics with tables and figures."""

"""Per-frame compute, no sockets: trackers, mask measurements, trajectory statistics, synthetic data.

Importing ``engine`` never imports torch; only the SAM 2 and export modules do, lazily.
"""

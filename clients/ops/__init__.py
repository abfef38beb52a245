"""Operating a daemon: record, prompt/status/msd commands, latency bench, starting it as a subprocess."""

"""The lptem daemon: ingest socket, engine loop, publisher, control socket, metrics, record, wire protocol."""

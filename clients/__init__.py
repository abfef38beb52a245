"""Everything that talks to the daemon over the wire: camera senders, subscribers, recorder, CLI."""

"""Talking to the daemon over wire protocol v1: frame sender, result subscriber, control-socket client."""

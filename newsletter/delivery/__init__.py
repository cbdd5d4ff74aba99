"""Delivery: the outbox, digest fan-out and the sending workers. Uses domain + mail."""

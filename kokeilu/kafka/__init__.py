"""Kafka plumbing for nameko, written for kafka-python 3.x: consumer entrypoint, outbox relay, topics."""

"""Kokeilu's shared package: the event contract, configuration and the infrastructure every
service uses (Kafka entrypoint and outbox relay, stores, HTTP API, auth, metrics).

Nothing in here imports a service; services import from here and never from each other.
"""

"""The chaos harness: run the whole platform under load, break it, and audit what survived.

    python -m chaos --proposals 2000          # or: make chaos ARGS="--proposals 10000"

`chaos.platform` supervises a private Kafka broker and the four services (kill -9, SIGSTOP,
restarts, crash points), `chaos.load` drives proposals over HTTP with Idempotency-Keys,
`chaos.sinks` receives webhooks and e-mails, `chaos.audit` reads every topic and API and
counts losses and double effects, `chaos.run` ties them together. docs/operations.md ("Chaos
runs") says how to read the audit. The harness talks to the services over HTTP and Kafka only;
it imports none of their code.
"""

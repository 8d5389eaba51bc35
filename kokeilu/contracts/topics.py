"""Topic names (docs/architecture.md). Domain topics are internal; `kokeilu.results.v1` is public."""

INTAKE = "kokeilu.intake.v1"
PROPOSALS = "kokeilu.proposals.v1"
EVALUATIONS = "kokeilu.evaluations.v1"
NOTIFICATIONS = "kokeilu.notifications.v1"
RESULTS = "kokeilu.results.v1"
DEADLETTER = "kokeilu.deadletter.v1"
# Operators' own topic, not the services': one record per dead letter redriven
# (`python -m kokeilu.deadletters redrive`), keyed by the dead letter, so none is redriven twice.
REDRIVES = "kokeilu.deadletter-redrives.v1"

ALL = (INTAKE, PROPOSALS, EVALUATIONS, NOTIFICATIONS, RESULTS, DEADLETTER)
# Topics of the platform's operator tooling, created with the others (kokeilu/kafka/topics.py);
# no service reads or writes them, so the AsyncAPI document (the services' view) leaves them out.
OPERATIONS = (REDRIVES,)
# The results topic keeps the latest event per result forever, so a new subscriber reads the
# current catalogue from the beginning; the redrives topic keeps the latest record per dead letter.
COMPACTED = {RESULTS, REDRIVES}
DOMAIN = (PROPOSALS, EVALUATIONS, RESULTS)

"""Topic names (DESIGN.md). Domain topics are internal; `kokeilu.results.v1` is public."""

INTAKE = "kokeilu.intake.v1"
PROPOSALS = "kokeilu.proposals.v1"
EVALUATIONS = "kokeilu.evaluations.v1"
NOTIFICATIONS = "kokeilu.notifications.v1"
RESULTS = "kokeilu.results.v1"
DEADLETTER = "kokeilu.deadletter.v1"

ALL = (INTAKE, PROPOSALS, EVALUATIONS, NOTIFICATIONS, RESULTS, DEADLETTER)
# The results topic keeps the latest event per result forever, so a new subscriber reads the
# current catalogue from the beginning.
COMPACTED = {RESULTS}
DOMAIN = (PROPOSALS, EVALUATIONS, RESULTS)

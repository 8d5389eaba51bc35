"""The platform's four services: each is `services.<name>.service`, whose one service class nameko
runs (`nameko run services.<name>.service` finds it; the class is named too, for Kubernetes'
commands and the tests that check them). The one list of them: tests, chaos runs and
deploy/platform.sh read it here."""

SERVICES = {
    "proposals": "ProposalsService",
    "evaluation": "EvaluationService",
    "notifications": "NotificationsService",
    "catalogue": "CatalogueService",
}


def nameko_target(service: str) -> str:
    """What `nameko run` is given for `service` (its module and class)."""
    return f"services.{service}.service:{SERVICES[service]}"

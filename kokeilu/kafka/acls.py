"""Who may do what on the platform's Kafka cluster: one table, applied with the admin principal.

    python -m kokeilu.kafka.acls apply [--department NAME ...] [--set-passwords]
    python -m kokeilu.kafka.acls show  [--department NAME ...]

`apply` creates the platform's topics, (with --set-passwords) sets the SCRAM-SHA-512 credential
of every principal whose KAFKA_<USER>_PASSWORD is in the environment, creates the ACLs of the
table below and deletes any other ACL held by a principal of the table (on the topics and
groups of this KOKEILU_TOPIC_PREFIX): the table is the whole truth. It connects with the
Kafka settings of kokeilu.config (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL,
KAFKA_SASL_*, KAFKA_SSL_CAFILE), which must name a super user (the broker's `admin`).
Departments come from --department and KOKEILU_KAFKA_DEPARTMENTS (comma-separated).

Least privilege: a service may write only the topics it publishes (and the dead-letter topic),
read only the topics it consumes, with its own consumer groups; nothing may create, delete or
reconfigure topics but the admin. WRITE and READ imply DESCRIBE; WRITE on a topic also lets a
producer be idempotent (Kafka 3.0+, KIP-679), so no cluster-level grant is needed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from kokeilu.config import Settings, get_settings
from kokeilu.contracts import flows
from kokeilu.kafka.topics import ensure_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Access:
    """What one principal may do. `group` is its consumer-group name (without the topic prefix):
    it may use that group and any group named `<group>.<suffix>`."""

    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    group: str | None = None


# The table, from kokeilu.contracts.flows (who publishes and consumes what). Service principals
# are named after the service (its KAFKA_SASL_USERNAME); their groups are the ones
# kokeilu.kafka.consumer uses: <prefix>kokeilu.<service>[.<suffix>].
SERVICES: dict[str, Access] = {
    name: Access(writes=party.publishes, reads=party.consumes, group=f"kokeilu.{name}")
    for name, party in flows.SERVICES.items()
}
# City systems that send proposals and measurements in: write the intake topic, nothing else.
CITY_SYSTEMS: dict[str, Access] = {"intake": Access(writes=flows.CITY_SYSTEMS.publishes)}
DEFAULT_DEPARTMENTS = ("department",)
DEPARTMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def department(name: str) -> Access:
    """A city department: reads the public results topic, with consumer groups kokeilu.department.<name>[.*]."""
    return Access(reads=flows.DEPARTMENTS.consumes, group=f"kokeilu.department.{name}")


def principals(departments: Iterable[str] = DEFAULT_DEPARTMENTS) -> dict[str, Access]:
    table = {**SERVICES, **CITY_SYSTEMS}
    for name in departments:
        if not DEPARTMENT_NAME.match(name) or name in table:
            raise ValueError(f"department name {name!r}: lower-case letters, digits, - and _, and not a service's name")
        table[name] = department(name)
    return table


def _acl(
    user: str,
    operation: ACLOperation,
    resource: ResourceType,
    name: str,
    pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL,
) -> ACL:
    return ACL(
        principal=f"User:{user}",
        host="*",
        operation=operation,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(resource, name, pattern),
    )


def bindings(settings: Settings, departments: Iterable[str] = DEFAULT_DEPARTMENTS) -> set[ACL]:
    """Every ACL the table grants, on the physical names of KOKEILU_TOPIC_PREFIX."""
    acls = set()
    for user, access in principals(departments).items():
        for topic in access.writes:
            acls.add(_acl(user, ACLOperation.WRITE, ResourceType.TOPIC, settings.physical_topic(topic)))
        for topic in access.reads:
            acls.add(_acl(user, ACLOperation.READ, ResourceType.TOPIC, settings.physical_topic(topic)))
        if access.group:
            group = settings.physical_topic(access.group)
            acls.add(_acl(user, ACLOperation.READ, ResourceType.GROUP, group))
            acls.add(_acl(user, ACLOperation.READ, ResourceType.GROUP, group + ".", ACLResourcePatternType.PREFIXED))
    return acls


def password_variable(user: str) -> str:
    return "KAFKA_" + re.sub(r"[^A-Z0-9_]", "_", user.upper()) + "_PASSWORD"


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(**settings.kafka_client_options(), client_id="kokeilu-acls")


def set_passwords(settings: Settings, passwords: dict[str, str]) -> None:
    """Create or change SCRAM-SHA-512 credentials (what `kafka-configs --alter --add-config` does)."""
    admin = _admin(settings)
    try:
        result = admin.alter_user_scram_credentials(
            [
                UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password)
                for user, password in passwords.items()
            ]
        )
    finally:
        admin.close()
    failed = {user: error for user, error in result.items() if error}
    if failed:
        raise RuntimeError(f"could not set SCRAM credentials: {failed}")


def current(admin: KafkaAdminClient) -> set[ACL]:
    everything = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    acls, _ = admin.describe_acls(everything)
    return set(acls)


def apply(
    settings: Settings, departments: Iterable[str] = DEFAULT_DEPARTMENTS, passwords: dict[str, str] | None = None
) -> dict[str, Any]:
    """Topics, credentials and ACLs as the table says; returns what was created and deleted."""
    ensure_topics(settings)
    if passwords:
        set_passwords(settings, passwords)
    wanted = bindings(settings, departments)
    managed = {f"User:{user}" for user in principals(departments)}
    prefix = settings.kokeilu_topic_prefix
    admin = _admin(settings)
    try:
        existing = current(admin)
        stale = [
            acl
            for acl in existing - wanted
            if acl.principal in managed and (acl.resource_pattern.resource_name or "").startswith(prefix)
        ]
        missing = sorted(wanted - existing, key=repr)
        if stale:
            admin.delete_acls(stale)
        if missing:
            result = admin.create_acls(missing)
            if result["failed"]:
                raise RuntimeError(f"could not create ACLs: {result['failed']}")
    finally:
        admin.close()
    for acl in stale:
        log.info("deleted %s", acl)
    log.info("ACLs: %d wanted, %d created, %d stale deleted", len(wanted), len(missing), len(stale))
    return {"wanted": len(wanted), "created": missing, "deleted": stale}


def describe_table(settings: Settings, departments: Iterable[str] = DEFAULT_DEPARTMENTS) -> str:
    lines = []
    for user, access in principals(departments).items():
        group = settings.physical_topic(access.group) + "[.*]" if access.group else "-"
        lines.append(
            f"User:{user}\n  write: {', '.join(map(settings.physical_topic, access.writes)) or '-'}"
            f"\n  read:  {', '.join(map(settings.physical_topic, access.reads)) or '-'}\n  groups: {group}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kokeilu.kafka.acls", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["apply", "show"])
    parser.add_argument(
        "--department",
        action="append",
        default=[],
        help="a department principal (repeatable); also KOKEILU_KAFKA_DEPARTMENTS",
    )
    parser.add_argument(
        "--set-passwords",
        action="store_true",
        help="set the SCRAM credential of each principal whose KAFKA_<USER>_PASSWORD is set",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    env_departments = [d.strip() for d in os.environ.get("KOKEILU_KAFKA_DEPARTMENTS", "").split(",") if d.strip()]
    departments = tuple(dict.fromkeys(args.department + env_departments)) or DEFAULT_DEPARTMENTS
    settings = get_settings()
    if args.command == "show":
        print(describe_table(settings, departments))
        admin = _admin(settings)
        try:
            for acl in sorted(current(admin), key=repr):
                print(acl)
        finally:
            admin.close()
        return 0
    passwords = None
    if args.set_passwords:
        passwords = {
            user: os.environ[password_variable(user)]
            for user in principals(departments)
            if os.environ.get(password_variable(user))
        }
    result = apply(settings, departments, passwords)
    print(
        f"{result['wanted']} ACLs in the table; {len(result['created'])} created, {len(result['deleted'])} deleted"
        + (f"; SCRAM credentials set for {', '.join(sorted(passwords))}" if passwords else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

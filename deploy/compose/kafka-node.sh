#!/usr/bin/env bash
# One node of the docker-compose stack's three-node KRaft cluster (each node a broker and a
# controller). Secured exactly as deploy/kafka/secure.sh secures the single node (SASL_SSL with
# SCRAM-SHA-512 for clients and between brokers, TLS with client certificates on the controller
# listener, StandardAuthorizer, nothing allowed without an ACL): it renders that configuration,
# then sets what a node of a three-node cluster differs in.
#
#   kafka-node.sh config OUT    render this node's server.properties into OUT (tests/test_compose.py)
#   kafka-node.sh container     the kafka-N services' entrypoint: config, the admin client's
#                               properties, format the storage once (with the SCRAM users), start
#
# Environment: KAFKA_NODE_ID (1, 2 or 3), KAFKA_QUORUM_VOTERS (1@kafka-1:9093,2@kafka-2:9093,...),
# KAFKA_REPLICATION (3: every topic, the offsets and transaction logs), KAFKA_MIN_ISR (2: a write
# is acknowledged once two replicas have it; one broker may be down), and secure.sh's own
# (KAFKA_HOST is this node's name, which the broker certificate must name).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SECURE="${KAFKA_SECURE_SCRIPT:-$HERE/../kafka/secure.sh}"

log() { echo "kafka-node: $*" >&2; }

# key=value: replace the line of `key` in the file, which must have exactly one.
set_property() {
  local file="$1" key="$2" value="$3"
  local count; count="$(grep -c "^${key//./\\.}=" "$file" || true)"
  if [[ "$count" != 1 ]]; then log "$file has $count lines for $key, expected 1 (secure.sh's template changed?)"; exit 1; fi
  sed -i "s#^${key//./\\.}=.*#${key}=${value}#" "$file"
}

config() {
  local out="$1"
  local id="${KAFKA_NODE_ID:?KAFKA_NODE_ID}" voters="${KAFKA_QUORUM_VOTERS:?KAFKA_QUORUM_VOTERS}"
  local replication="${KAFKA_REPLICATION:-3}" min_isr="${KAFKA_MIN_ISR:-2}"
  bash "$SECURE" config "$out"
  set_property "$out" node.id "$id"
  set_property "$out" controller.quorum.voters "$voters"
  local key
  for key in default.replication.factor offsets.topic.replication.factor \
             transaction.state.log.replication.factor share.coordinator.state.topic.replication.factor; do
    set_property "$out" "$key" "$replication"
  done
  for key in transaction.state.log.min.isr share.coordinator.state.topic.min.isr; do
    set_property "$out" "$key" "$min_isr"
  done
  # The default of every topic that does not set its own (the platform's topics do not).
  if grep -q '^min\.insync\.replicas=' "$out"; then
    set_property "$out" min.insync.replicas "$min_isr"
  else
    echo "min.insync.replicas=$min_isr" >> "$out"
  fi
}

container() {
  # As secure.sh container does, with this node's configuration.
  local home="${KAFKA_HOME:-/opt/kafka}"
  export KAFKA_SECRETS_DIR="${KAFKA_SECRETS_DIR:-/etc/kafka/secrets}" KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-/var/lib/kafka}"
  export KAFKA_HOST="${KAFKA_HOST:?KAFKA_HOST}"
  local conf="$home/config/kokeilu-server.properties"
  [[ -f "$KAFKA_SECRETS_DIR/broker.p12" ]] || { log "no certificates in $KAFKA_SECRETS_DIR (the kafka-certs service makes them)"; exit 1; }
  config "$conf"
  bash "$SECURE" client-config "$home/config/admin-client.properties"
  if [[ ! -f "$KAFKA_DATA_DIR/data/meta.properties" ]]; then
    # Every node is formatted with the same cluster id and the same SCRAM users.
    local args; mapfile -t args < <(bash "$SECURE" scram-args)
    log "formatting KRaft storage of node $KAFKA_NODE_ID (cluster ${CLUSTER_ID:?CLUSTER_ID})"
    "$home/bin/kafka-storage.sh" format -t "$CLUSTER_ID" -c "$conf" "${args[@]}"
  fi
  exec "$home/bin/kafka-server-start.sh" "$conf"
}

case "${1:-}" in
  config) config "${2:?output file}" ;;
  container) container ;;
  *) echo "usage: $0 config OUT | container" >&2; exit 2 ;;
esac

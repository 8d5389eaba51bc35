#!/usr/bin/env bash
# The platform as it runs at scale, on one machine: a three-node Apache Kafka KRaft cluster,
# PostgreSQL with a database and a role per service, and two instances of every service.
#
#   deploy/cluster.sh start     start what is not running, wait until every instance is ready
#   deploy/cluster.sh stop      stop the instances (graceful), then the three Kafka nodes
#   deploy/cluster.sh status    say what runs where
#
# Each Kafka node is a broker and a controller (process.roles=broker,controller): three
# processes instead of six on a small machine, and a quorum of three controllers, which goes on
# with one node lost, as the brokers do (topics: replication 3, min.insync.replicas 2). A
# production cluster separates the controllers (deploy/k8s/README.md, Strimzi).
#
# Ports: Kafka 19092, 19094, 19096 (controllers 19093, 19095, 19097); instances 8101-8104
# and 8201-8204; the e-mail sink 8125; PostgreSQL is deploy/postgres.sh's (55432). Everything
# else (logs, pids, Kafka data) in .local/cluster/. `make run` (one node, SQLite) is separate
# and may run beside it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${KOKEILU_CLUSTER_DIR:-$ROOT/.local/cluster}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
NODES=(1:19092:19093 2:19094:19095 3:19096:19097)
VOTERS="1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
BOOTSTRAP="127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
INSTANCES="proposals:8101 evaluation:8102 notifications:8103 catalogue:8104 proposals@2:8201 evaluation@2:8202 notifications@2:8203 catalogue@2:8204"
SERVICES=(proposals evaluation notifications catalogue)
PGPORT="${PGPORT:-55432}"

log() { echo "cluster: $*" >&2; }

node() {  # node <id> <port> <controller port> <kafka.sh command>
  KAFKA_NODE_ID="$1" KAFKA_PORT="$2" KAFKA_CONTROLLER_PORT="$3" KAFKA_DATA_DIR="$CLUSTER/kafka-$1" \
    KAFKA_QUORUM_VOTERS="$VOTERS" KAFKA_CLUSTER_ID="$(cluster_id)" KAFKA_REPLICATION=3 KAFKA_MIN_ISR=2 \
    KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-$ROOT/.local/kafka/libs}" "$ROOT/deploy/kafka.sh" "$4"
}

cluster_id() {  # one id for the three nodes, made once
  if [[ ! -s "$CLUSTER/cluster-id" ]]; then
    mkdir -p "$CLUSTER"
    # A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.
    "$PY" -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))' > "$CLUSTER/cluster-id"
  fi
  cat "$CLUSTER/cluster-id"
}

platform() {  # the instances, through deploy/platform.sh
  KOKEILU_LOCAL_DIR="$CLUSTER" KOKEILU_INSTANCES="$INSTANCES" KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP" \
    KOKEILU_TOPIC_REPLICATION=3 KOKEILU_LOCAL_SMTP_PORT="${KOKEILU_LOCAL_SMTP_PORT:-8125}" \
    KOKEILU_ADMIN_TOKEN_FILE="$ROOT/.local/admin-token" KOKEILU_STOP_COMMAND="make cluster-stop" \
    KOKEILU_DATABASE_URL_TEMPLATE="postgresql+psycopg2://kokeilu_{service}:{service}-local-only@127.0.0.1:$PGPORT/kokeilu_{service}" \
    KOKEILU_DATA_DIR="$CLUSTER/data" "$ROOT/deploy/platform.sh" "$@"
}

databases() {  # a role and a database per service, each role owning its database only
  "$ROOT/deploy/postgres.sh" start
  local service
  for service in "${SERVICES[@]}"; do
    psql -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -q -d postgres <<SQL
SELECT 'CREATE ROLE kokeilu_$service LOGIN PASSWORD ''$service-local-only'''
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kokeilu_$service')\gexec
SELECT 'CREATE DATABASE kokeilu_$service OWNER kokeilu_$service'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kokeilu_$service')\gexec
REVOKE ALL ON DATABASE kokeilu_$service FROM PUBLIC;
SQL
  done
}

start() {
  mkdir -p "$CLUSTER"
  "$ROOT/deploy/kafka.sh" fetch
  databases
  cluster_id >/dev/null  # made here, before the three nodes start side by side
  # All three at once: a node is ready only when the quorum is, which needs the other two.
  local entry pids=()
  for entry in "${NODES[@]}"; do
    IFS=: read -r id port controller <<< "$entry"
    node "$id" "$port" "$controller" start & pids+=($!)
  done
  local pid failed=""
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [[ -z "$failed" ]] || { log "a Kafka node did not start; logs in $CLUSTER/kafka-*/logs"; exit 1; }
  echo "Kafka: $BOOTSTRAP (3 nodes, topics replicated 3 times, min.insync.replicas 2)"
  echo "PostgreSQL: 127.0.0.1:$PGPORT, databases kokeilu_<service> (roles of the same name)"
  platform start
}

stop() {
  platform stop --keep-kafka
  local entry
  for entry in "${NODES[@]}"; do
    IFS=: read -r id port controller <<< "$entry"
    node "$id" "$port" "$controller" stop
  done
}

status() {
  local entry
  for entry in "${NODES[@]}"; do
    IFS=: read -r id port controller <<< "$entry"
    printf 'kafka node %s  ' "$id"; node "$id" "$port" "$controller" status 2>&1 || true
  done
  platform status | grep -v '^kafka:' || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

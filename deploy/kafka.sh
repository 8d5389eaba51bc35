#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for development and tests.
#
#   deploy/kafka.sh start    fetch the broker from Maven Central if needed, format storage once, start; no-op if running
#   deploy/kafka.sh stop     stop the broker started here
#   deploy/kafka.sh status   exit 0 and say so when the broker answers on its port
#   deploy/kafka.sh reset    stop and delete the local data (topics, offsets)
#   deploy/kafka.sh fetch    only fetch the broker's jars (the chaos harness runs brokers of its own)
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KOKEILU_LOCAL_DIR (<repo>/.local),
# KAFKA_DATA_DIR (data, logs and pid of this broker; <local>/kafka), KAFKA_LIBS_DIR (<local>/kafka/libs).
# A node of a cluster (deploy/cluster.sh) also gets KAFKA_NODE_ID, KAFKA_QUORUM_VOTERS,
# KAFKA_CLUSTER_ID (the same for every node), KAFKA_REPLICATION and KAFKA_MIN_ISR.
#
# KAFKA_SECURE=1 starts the secured broker of production instead (docs/operations.md, "Kafka
# security"): SASL_SSL with SCRAM-SHA-512 on KAFKA_PORT (default 9094), the controller listener
# on TLS with client certificates (KAFKA_CONTROLLER_PORT, default 9095), StandardAuthorizer with
# nothing allowed unless an ACL says so; data in <local>/kafka-secure. On first start it makes a
# CA and broker certificate (deploy/kafka/secure.sh) and formats storage with the SCRAM users
# (admin, the four services, intake, department; passwords KAFKA_<USER>_PASSWORD, default
# <user>-local-only). Then create topics and ACLs with
#   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9094 KAFKA_SECURITY_PROTOCOL=SASL_SSL \
#   KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USERNAME=admin KAFKA_SASL_PASSWORD=admin-local-only \
#   KAFKA_SSL_CAFILE=.local/kafka-secure/secrets/ca.pem .venv/bin/python -m kokeilu.kafka.acls apply
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/deploy/kafka"
LOCAL="${KOKEILU_LOCAL_DIR:-$ROOT/.local}"
SECURE="${KAFKA_SECURE:-0}"
LIBS="${KAFKA_LIBS_DIR:-$LOCAL/kafka/libs}"
if [[ "$SECURE" == 1 ]]; then
  DIR="${KAFKA_DATA_DIR:-$LOCAL/kafka-secure}"
  PORT="${KAFKA_PORT:-9094}"
  CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9095}"
else
  DIR="${KAFKA_DATA_DIR:-$LOCAL/kafka}"
  PORT="${KAFKA_PORT:-9092}"
  CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
fi
# A node of a cluster (deploy/cluster.sh): its id, the controller quorum, and the replication of
# the topics it creates by default and of its internal topics. Alone: node 1, a quorum of itself.
NODE_ID="${KAFKA_NODE_ID:-1}"
VOTERS="${KAFKA_QUORUM_VOTERS:-$NODE_ID@127.0.0.1:$CONTROLLER_PORT}"
REPLICATION="${KAFKA_REPLICATION:-1}"
MIN_ISR="${KAFKA_MIN_ISR:-1}"
PIDFILE="$DIR/broker.pid"
CONF="$DIR/server.properties"

log() { echo "kafka: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  kill -0 "$pid" 2>/dev/null || return 1
  # A broker killed with -9 whose parent has not reaped it yet is a zombie: not running.
  [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]] && echo "$pid"
}

fetch() {
  if [[ -f "$LIBS/.complete" ]] && cmp -s "$HERE/pom.xml" "$LIBS/.complete"; then return; fi
  command -v mvn >/dev/null || { log "Maven (mvn) is needed to fetch the broker; apt-get install maven"; exit 1; }
  log "fetching Apache Kafka from Maven Central into $LIBS"
  rm -rf "$LIBS"; mkdir -p "$LIBS"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime
  # kafka-tools pulls an slf4j 1.x API that would hide the log4j2 binding.
  rm -f "$LIBS"/slf4j-api-1.*.jar
  cp "$HERE/pom.xml" "$LIBS/.complete"
}

java_run() {
  java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$DIR/logs" \
    -cp "$LIBS/*" "$@"
}

start() {
  fetch  # always: tests and the chaos harness start brokers of their own from these jars
  if pid="$(running_pid)"; then log "already running (pid $pid) on 127.0.0.1:$PORT"; return 0; fi
  if port_open "$PORT"; then log "something already listens on 127.0.0.1:$PORT; using it"; return 0; fi
  mkdir -p "$DIR/logs" "$DIR/data"
  local scram=()
  if [[ "$SECURE" == 1 ]]; then
    "$HERE/secure.sh" certs "$DIR/secrets" "$DIR/secrets" 127.0.0.1 localhost
    KAFKA_BIND_HOST=127.0.0.1 KAFKA_HOST=127.0.0.1 KAFKA_PORT="$PORT" KAFKA_CONTROLLER_PORT="$CONTROLLER_PORT" \
      KAFKA_DATA_DIR="$DIR" KAFKA_SECRETS_DIR="$DIR/secrets" KAFKA_PARTITIONS=4 KAFKA_OFFSETS_PARTITIONS=4 \
      "$HERE/secure.sh" config "$CONF"
    KAFKA_SECRETS_DIR="$DIR/secrets" "$HERE/secure.sh" client-config "$DIR/secrets/admin-client.properties"
    mapfile -t scram < <("$HERE/secure.sh" scram-args)
  else
    sed -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@DATA_DIR@#$DIR#g" \
      -e "s#@NODE_ID@#$NODE_ID#g" -e "s#@VOTERS@#$VOTERS#g" -e "s#@REPLICATION@#$REPLICATION#g" \
      -e "s#@MIN_ISR@#$MIN_ISR#g" "$HERE/server.properties" > "$CONF"
  fi
  if [[ ! -f "$DIR/data/meta.properties" ]]; then
    local cluster_id="${KAFKA_CLUSTER_ID:-}"  # the nodes of one cluster share it
    [[ -n "$cluster_id" ]] || cluster_id="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    log "formatting KRaft storage (cluster $cluster_id)"
    java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF" "${scram[@]}" >"$DIR/logs/format.log" 2>&1
  fi
  local kind=""; [[ "$SECURE" == 1 ]] && kind="secured "
  log "starting ${kind}broker on 127.0.0.1:$PORT (logs: $DIR/logs/server.log)"
  # The log is appended across restarts: only what this start writes says it is ready.
  local log_from; log_from=$(( $(stat -c %s "$DIR/logs/server.log" 2>/dev/null || echo 0) + 1 ))
  setsid java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$DIR/logs" \
    -cp "$LIBS/*" kafka.Kafka "$CONF" </dev/null >"$DIR/logs/stdout.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    if ! running_pid >/dev/null; then log "broker exited; see $DIR/logs/"; tail -n 30 "$DIR/logs/stdout.log" >&2; exit 1; fi
    # grep reads from a process substitution, not a pipe: under pipefail, `tail | grep -q` fails
    # when grep stops at the match while tail still has more than a pipe's buffer to write
    # (SIGPIPE), which a broker recovering hundreds of partitions logs; it then never looked ready.
    if port_open "$PORT" \
        && grep -q "Kafka Server started\|KafkaRaftServer.*started" < <(tail -c "+$log_from" "$DIR/logs/server.log" 2>/dev/null); then
      log "ready"; return 0
    fi
    sleep 0.5
  done
  log "broker did not become ready in 60 s; see $DIR/logs/server.log"; exit 1
}

stop() {
  if pid="$(running_pid)"; then
    log "stopping (pid $pid)"; kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  else
    log "not running"
  fi
  rm -f "$PIDFILE"
}

status() {
  if port_open "$PORT"; then log "running on 127.0.0.1:$PORT"; return 0; fi
  log "not running"; return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  reset) stop; rm -rf "$DIR/data" "$DIR/logs" "$DIR/secrets" ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|status|reset|fetch" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs the whole platform locally: the Kafka broker and the four services, SQLite stores.
#
#   deploy/platform.sh start    start (no-op for what already runs), wait until every service is ready
#   deploy/platform.sh stop     stop the services (SIGTERM: graceful), then the broker we started
#   deploy/platform.sh status   say what runs where
#
# KAFKA_BOOTSTRAP_SERVERS pointing elsewhere than 127.0.0.1:9092 skips the local broker.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${KOKEILU_LOCAL_DIR:-$ROOT/.local}"
LOGS="$LOCAL/logs"
RUN="$LOCAL/run"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
# Instances to run, each `service[@n]:port` (deploy/cluster.sh runs two of each on PostgreSQL).
read -r -a SERVICES <<< "${KOKEILU_INSTANCES:-proposals:8001 evaluation:8002 notifications:8003 catalogue:8004}"
BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
TOKEN_FILE="${KOKEILU_ADMIN_TOKEN_FILE:-$LOCAL/admin-token}"

# What `nameko run` is given for a service: services/__init__.py, the one list of the services.
target_of() {
  (cd "$ROOT" && "$PY" -c 'import sys; from services import nameko_target; print(nameko_target(sys.argv[1]))' "${1%%@*}")
}

admin_token() {
  if [[ -n "${KOKEILU_ADMIN_TOKEN:-}" ]]; then echo "$KOKEILU_ADMIN_TOKEN"; return; fi
  if [[ ! -s "$TOKEN_FILE" ]]; then
    mkdir -p "$LOCAL"; (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$TOKEN_FILE")
    echo "generated an admin token in $TOKEN_FILE" >&2
  fi
  cat "$TOKEN_FILE"
}

start() {
  cd "$ROOT"
  mkdir -p "$LOGS" "$RUN"
  if [[ "$BOOTSTRAP" == "127.0.0.1:9092" || "$BOOTSTRAP" == "localhost:9092" ]]; then
    "$ROOT/deploy/kafka.sh" start
  fi
  local token; token="$(admin_token)"
  local smtp_host="${KOKEILU_SMTP_HOST:-}" smtp_port="${KOKEILU_SMTP_PORT:-}"
  if [[ -z "$smtp_host" ]]; then
    # No mail server given: a local sink keeps every e-mail the platform sends in a maildir.
    smtp_host=127.0.0.1; smtp_port="${KOKEILU_LOCAL_SMTP_PORT:-8025}"
    if ! [[ -f "$RUN/smtp.pid" ]] || ! kill -0 "$(cat "$RUN/smtp.pid")" 2>/dev/null; then
      mkdir -p "$LOCAL/mail/tmp" "$LOCAL/mail/new" "$LOCAL/mail/cur"
      setsid "$PY" -m aiosmtpd -n -u -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$LOCAL/mail" \
        </dev/null >>"$LOGS/smtp.log" 2>&1 &
      echo $! > "$RUN/smtp.pid"
    fi
  fi
  for entry in "${SERVICES[@]}"; do
    local name="${entry%%:*}" port="${entry##*:}"
    local pidfile="$RUN/$name.pid"
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "$name: already running (pid $(cat "$pidfile"))"; continue
    fi
    local service="${name%%@*}" database_url=""
    # KOKEILU_DATABASE_URL_TEMPLATE: a URL with {service} in it, a database per service (default: SQLite).
    [[ -n "${KOKEILU_DATABASE_URL_TEMPLATE:-}" ]] && database_url="${KOKEILU_DATABASE_URL_TEMPLATE//\{service\}/$service}"
    DATABASE_URL="$database_url" \
    KOKEILU_ADMIN_TOKEN="$token" KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP" PYTHONPATH="$ROOT" \
      KOKEILU_SMTP_HOST="$smtp_host" KOKEILU_SMTP_PORT="${smtp_port:-25}" \
      KOKEILU_WEBHOOK_ALLOWLIST="${KOKEILU_WEBHOOK_ALLOWLIST-127.0.0.0/8,::1}" \
      WEB_SERVER_ADDRESS="${WEB_SERVER_HOST:-127.0.0.1}:$port" \
      setsid "$PY" -W ignore::DeprecationWarning -m nameko run --config "services/$service/config.yaml" \
      "$(target_of "$name")" </dev/null >>"$LOGS/$name.log" 2>&1 &
    echo $! > "$pidfile"
  done
  for entry in "${SERVICES[@]}"; do
    local name="${entry%%:*}" port="${entry##*:}" ok=""
    for _ in $(seq 1 120); do
      if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health/ready', timeout=2)" 2>/dev/null; then ok=1; break; fi
      if ! kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then break; fi
      sleep 0.5
    done
    if [[ -z "$ok" ]]; then echo "$name did not become ready; see $LOGS/$name.log" >&2; tail -n 20 "$LOGS/$name.log" >&2; exit 1; fi
  done
  status
  echo
  if [[ -n "${KOKEILU_ADMIN_TOKEN:-}" ]]; then echo "admin token: the one in KOKEILU_ADMIN_TOKEN"; else echo "admin token: in $TOKEN_FILE"; fi
  echo "try: curl -H \"Authorization: Bearer \$(cat $TOKEN_FILE)\" http://127.0.0.1:${SERVICES[0]##*:}/v1/proposals"
  [[ -z "${KOKEILU_SMTP_HOST:-}" ]] && echo "e-mails go to the local sink: $LOCAL/mail (maildir)"
  echo "stop with: ${KOKEILU_STOP_COMMAND:-make stop}"
}

stop() {
  for entry in "${SERVICES[@]}"; do
    local name="${entry%%:*}" pidfile="$RUN/${entry%%:*}.pid"
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      local pid; pid="$(cat "$pidfile")"; kill -TERM "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      echo "$name: stopped"
    fi
    rm -f "$pidfile"
  done
  if [[ -f "$RUN/smtp.pid" ]]; then kill "$(cat "$RUN/smtp.pid")" 2>/dev/null || true; rm -f "$RUN/smtp.pid"; fi
  if [[ "${1:-}" != "--keep-kafka" ]]; then "$ROOT/deploy/kafka.sh" stop; fi
}

status() {
  if [[ "$BOOTSTRAP" == "127.0.0.1:9092" || "$BOOTSTRAP" == "localhost:9092" ]]; then "$ROOT/deploy/kafka.sh" status || true; fi
  for entry in "${SERVICES[@]}"; do
    local name="${entry%%:*}" port="${entry##*:}" state="stopped"
    if [[ -f "$RUN/$name.pid" ]] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then state="running (pid $(cat "$RUN/$name.pid"))"; fi
    printf '%-14s %-24s http://127.0.0.1:%s  logs: %s\n' "$name" "$state" "$port" "$LOGS/$name.log"
  done
}

case "${1:-}" in
  start) start ;;
  stop) shift; stop "$@" ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Certificates, configuration and SCRAM users of the secured Kafka broker (docs/operations.md,
# "Kafka security"). Used by deploy/kafka.sh (KAFKA_SECURE=1) and by the docker-compose stack.
#
#   secure.sh certs SECRETS_DIR CA_DIR HOST...   create, once, a CA and the broker's certificate
#                                                for HOST... (names or IPs clients connect to)
#   secure.sh config OUT                         render server-secure.properties into OUT (mode 600)
#   secure.sh client-config OUT                  client properties of the admin user, for the
#                                                Kafka CLI tools (--command-config), mode 600
#   secure.sh scram-args                         the --add-scram arguments for `kafka-storage format`
#   secure.sh container                          docker-compose entrypoint of the kafka service:
#                                                config, format storage once, exec the broker
#
# Certificates (keytool only, so it runs wherever Java does):
#   SECRETS_DIR/ca.p12         the CA's key (keep it, or delete it to make the CA sign nothing more)
#   SECRETS_DIR/broker.p12     the broker's key and certificate (CN=kokeilu-broker), signed by the CA
#   SECRETS_DIR/truststore.p12 the CA certificate, for the broker
#   SECRETS_DIR/store-password the password of the three stores (random)
#   CA_DIR/ca.pem              the CA certificate, for clients (KAFKA_SSL_CAFILE); not secret
# Bring your own instead by putting these files in place before the first start.
#
# Environment: KAFKA_ADMIN_USER (admin); KAFKA_<USER>_PASSWORD for every user in KAFKA_SCRAM_USERS
# (default: admin and the Kokeilu principals), each defaulting to "<user>-local-only", which is
# for local use only; passwords: letters, digits, - and _. For `config`: KAFKA_BIND_HOST,
# KAFKA_HOST, KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_DATA_DIR, KAFKA_SECRETS_DIR,
# KAFKA_PARTITIONS, KAFKA_OFFSETS_PARTITIONS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ADMIN_USER="${KAFKA_ADMIN_USER:-admin}"
# The principals of kokeilu/kafka/acls.py (PRINCIPALS, plus the example department).
USERS="${KAFKA_SCRAM_USERS:-$ADMIN_USER proposals evaluation notifications catalogue intake department}"

log() { echo "kafka-secure: $*" >&2; }

password_of() {
  local var="KAFKA_${1^^}_PASSWORD"; var="${var//[^A-Z0-9_]/_}"
  local value="${!var:-$1-local-only}"
  if [[ ! "$value" =~ ^[A-Za-z0-9_-]+$ ]]; then log "$var: use letters, digits, - and _ only"; exit 1; fi
  echo "$value"
}

random_password() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

certs() {
  local secrets="$1" ca_dir="$2"; shift 2
  if [[ -f "$secrets/broker.p12" && -f "$secrets/truststore.p12" && -f "$ca_dir/ca.pem" ]]; then
    log "certificates present in $secrets"; return 0
  fi
  (($#)) || { log "certs: name at least one host the broker is reached by"; exit 2; }
  mkdir -p "$secrets" "$ca_dir"
  local san="" host
  for host in "$@"; do
    if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then san+="${san:+,}ip:$host"; else san+="${san:+,}dns:$host"; fi
  done
  (
    umask 077
    [[ -s "$secrets/store-password" ]] || random_password > "$secrets/store-password"
    local pass; pass="$(cat "$secrets/store-password")"
    local ks=(-storetype PKCS12 -storepass "$pass" -keypass "$pass")
    rm -f "$secrets/ca.p12" "$secrets/broker.p12" "$secrets/truststore.p12"
    log "creating a CA and the broker certificate for $san in $secrets"
    keytool -genkeypair -alias ca -dname "CN=Kokeilu Kafka CA" -keyalg RSA -keysize 3072 -validity 3650 \
      -ext bc:c=ca:true -ext ku:c=keyCertSign,cRLSign -keystore "$secrets/ca.p12" "${ks[@]}" 2>/dev/null
    keytool -exportcert -rfc -alias ca -keystore "$secrets/ca.p12" "${ks[@]}" > "$secrets/ca.pem" 2>/dev/null
    keytool -genkeypair -alias broker -dname "CN=kokeilu-broker" -keyalg RSA -keysize 2048 -validity 825 \
      -keystore "$secrets/broker.p12" "${ks[@]}" 2>/dev/null
    keytool -certreq -alias broker -keystore "$secrets/broker.p12" "${ks[@]}" 2>/dev/null \
      | keytool -gencert -alias ca -keystore "$secrets/ca.p12" "${ks[@]}" -rfc -validity 825 \
          -ext "san=$san" -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth,clientAuth \
          > "$secrets/broker.pem" 2>/dev/null
    keytool -importcert -noprompt -alias ca -file "$secrets/ca.pem" -keystore "$secrets/broker.p12" "${ks[@]}" 2>/dev/null
    keytool -importcert -noprompt -alias broker -file "$secrets/broker.pem" -keystore "$secrets/broker.p12" "${ks[@]}" >/dev/null 2>&1
    keytool -importcert -noprompt -alias ca -file "$secrets/ca.pem" -keystore "$secrets/truststore.p12" "${ks[@]}" 2>/dev/null
    rm -f "$secrets/broker.pem"
  )
  cp "$secrets/ca.pem" "$ca_dir/ca.pem.tmp" && chmod 644 "$ca_dir/ca.pem.tmp" && mv "$ca_dir/ca.pem.tmp" "$ca_dir/ca.pem"
  chmod 755 "$ca_dir"
}

config() {
  local out="$1" secrets="${KAFKA_SECRETS_DIR:?KAFKA_SECRETS_DIR}"
  local pass; pass="$(cat "$secrets/store-password")"
  (
    umask 077
    sed -e "s#@BIND_HOST@#${KAFKA_BIND_HOST:-}#g" -e "s#@HOST@#${KAFKA_HOST:?KAFKA_HOST}#g" \
        -e "s#@PORT@#${KAFKA_PORT:-9092}#g" -e "s#@CONTROLLER_PORT@#${KAFKA_CONTROLLER_PORT:-9093}#g" \
        -e "s#@DATA_DIR@#${KAFKA_DATA_DIR:?KAFKA_DATA_DIR}#g" -e "s#@SECRETS_DIR@#$secrets#g" \
        -e "s#@STORE_PASSWORD@#$pass#g" -e "s#@ADMIN_USER@#$ADMIN_USER#g" \
        -e "s#@ADMIN_PASSWORD@#$(password_of "$ADMIN_USER")#g" \
        -e "s#@PARTITIONS@#${KAFKA_PARTITIONS:-6}#g" -e "s#@OFFSETS_PARTITIONS@#${KAFKA_OFFSETS_PARTITIONS:-50}#g" \
        "$HERE/server-secure.properties" > "$out.tmp"
    mv "$out.tmp" "$out"
  )
}

client_config() {
  local out="$1" secrets="${KAFKA_SECRETS_DIR:?KAFKA_SECRETS_DIR}"
  (
    umask 077
    cat > "$out.tmp" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$ADMIN_USER" password="$(password_of "$ADMIN_USER")";
ssl.truststore.type=PKCS12
ssl.truststore.location=$secrets/truststore.p12
ssl.truststore.password=$(cat "$secrets/store-password")
EOF
    mv "$out.tmp" "$out"
  )
}

scram_args() {
  local user
  for user in $USERS; do
    echo "--add-scram"
    echo "SCRAM-SHA-512=[name=$user,password=$(password_of "$user")]"
  done
}

container() {
  # The apache/kafka image: Kafka in KAFKA_HOME (/opt/kafka), data volume on /var/lib/kafka/data,
  # certificates made by the kafka-certs service in /etc/kafka/secrets.
  local home="${KAFKA_HOME:-/opt/kafka}"
  export KAFKA_SECRETS_DIR="${KAFKA_SECRETS_DIR:-/etc/kafka/secrets}" KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-/var/lib/kafka}"
  export KAFKA_HOST="${KAFKA_HOST:-kafka}"
  local conf="$home/config/kokeilu-server.properties"
  [[ -f "$KAFKA_SECRETS_DIR/broker.p12" ]] || { log "no certificates in $KAFKA_SECRETS_DIR (the kafka-certs service makes them)"; exit 1; }
  config "$conf"
  # For the healthcheck and the CLI tools (--command-config): the admin user.
  client_config "$home/config/admin-client.properties"
  if [[ ! -f "$KAFKA_DATA_DIR/data/meta.properties" ]]; then
    local args; mapfile -t args < <(scram_args)
    log "formatting KRaft storage (cluster ${CLUSTER_ID:?CLUSTER_ID}) with SCRAM users: $USERS"
    "$home/bin/kafka-storage.sh" format -t "$CLUSTER_ID" -c "$conf" "${args[@]}"
  fi
  exec "$home/bin/kafka-server-start.sh" "$conf"
}

case "${1:-}" in
  certs) shift; certs "$@" ;;
  config) config "${2:?output file}" ;;
  client-config) client_config "${2:?output file}" ;;
  scram-args) scram_args ;;
  container) container ;;
  *) echo "usage: $0 certs SECRETS_DIR CA_DIR HOST... | config OUT | client-config OUT | scram-args | container" >&2; exit 2 ;;
esac

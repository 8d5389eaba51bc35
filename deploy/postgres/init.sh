#!/usr/bin/env bash
# Creates one login role and one database per Kokeilu service, each role owning its
# database, so no service can read another's store.
#
# The postgres image runs this once, on the first start with an empty data volume
# (/docker-entrypoint-initdb.d). Passwords come from the environment that
# docker-compose.yml gives the postgres container: <SERVICE>_DB_PASSWORD.
# Changing a password later means ALTER ROLE (or a fresh volume); editing the
# environment alone does not change an existing role.
set -eo pipefail

create_service_database() {
  local name="$1" password="$2"
  if [[ -z "$password" ]]; then
    echo "init.sh: no password given for the $name database" >&2
    exit 1
  fi
  # The password goes through the environment (\getenv), not psql's argument list.
  KOKEILU_DB_PASSWORD="$password" psql -v ON_ERROR_STOP=1 -v name="$name" \
    --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" <<'SQL'
\getenv password KOKEILU_DB_PASSWORD
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
  echo "init.sh: created role and database $name"
}

create_service_database proposals "${PROPOSALS_DB_PASSWORD:-}"
create_service_database evaluation "${EVALUATION_DB_PASSWORD:-}"
create_service_database notifications "${NOTIFICATIONS_DB_PASSWORD:-}"
create_service_database catalogue "${CATALOGUE_DB_PASSWORD:-}"

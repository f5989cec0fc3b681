#!/bin/sh
# Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d): the two
# login roles tokend uses, with the passwords from compose.yaml's secrets. sql/001_roles.sql
# (tokenctl migrate) finds them and only grants; the owner's password is POSTGRES_PASSWORD_FILE.
set -eu
svc=$(cat /run/secrets/pg_service_password)
rep=$(cat /run/secrets/pg_reporting_password)
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
     -v svc="$svc" -v rep="$rep" <<'SQL'
CREATE ROLE tokend_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'svc';
CREATE ROLE tokend_reporting LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'rep';
SQL

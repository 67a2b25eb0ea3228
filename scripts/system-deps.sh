#!/usr/bin/env bash
# What the test suite needs from the system besides Python and Node.js:
# - the OpenLDAP and SASL headers python-ldap builds against (PyPI has no python-ldap wheel;
#   the FAB/LDAP tests import it);
# - PostgreSQL's server programs (initdb, pg_ctl): the end-to-end test starts a throwaway
#   server of its own in place of RDS.
# Installs what is missing with apt-get; elsewhere, says what to install.
set -euo pipefail
missing=()
if [ ! -f /usr/include/ldap.h ] || [ ! -f /usr/include/sasl/sasl.h ]; then
  missing+=(libldap2-dev libsasl2-dev)
fi
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "missing: ${missing[*]} (Debian names). python-ldap needs the OpenLDAP and SASL" \
       "development headers (Fedora: openldap-devel cyrus-sasl-devel; macOS: brew install" \
       "openldap); the end-to-end test needs PostgreSQL's server (Fedora: postgresql-server;" \
       "macOS: brew install postgresql@16)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null

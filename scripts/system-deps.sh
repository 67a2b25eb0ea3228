#!/usr/bin/env bash
# What the test suite needs from the system besides Python and Node.js: the OpenLDAP and SASL
# headers python-ldap builds against (PyPI has no python-ldap wheel; the FAB/LDAP tests import
# it). Installs them with apt-get when missing; elsewhere, says what to install.
set -euo pipefail
if [ -f /usr/include/ldap.h ] && [ -f /usr/include/sasl/sasl.h ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "python-ldap needs the OpenLDAP and SASL development headers (Debian: libldap2-dev" \
       "libsasl2-dev; Fedora: openldap-devel cyrus-sasl-devel; macOS: brew install openldap)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libldap2-dev libsasl2-dev >/dev/null

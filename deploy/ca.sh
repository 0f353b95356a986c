#!/usr/bin/env bash
# Site certificate authority for edge-emotion (openssl): one CA per site, a broker server certificate with
# subjectAltNames, and one client certificate per kiosk / operator (CN = the MQTT username the broker uses).
#
#   deploy/ca.sh PKI_DIR init SITE_ID                  site CA: PKI_DIR/ca.key (0600), PKI_DIR/ca.crt
#   deploy/ca.sh PKI_DIR server HOST [HOST|IP ...]     broker: PKI_DIR/server.{key,crt}, SAN = every HOST/IP
#   deploy/ca.sh PKI_DIR client NAME [NAME ...]        clients: PKI_DIR/clients/NAME.{key,crt}, CN = NAME
#   deploy/ca.sh PKI_DIR show                          list the issued certificates with subject and expiry
#
# Idempotent: an existing key is never replaced; a certificate is reissued only when it is missing, not signed
# by this CA, expires within RENEW_DAYS (default 30), or (server) its SAN list differs. FORCE=1 reissues the
# certificates (keys are kept). Keys are EC P-256, mode 0600; DAYS (default 825) sets leaf validity, CA_DAYS
# (default 3650) the CA's. Keep PKI_DIR (above all ca.key) off the kiosks and out of version control.
set -euo pipefail
umask 077

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "ca.sh: error: $*" >&2; exit 1; }
[ $# -ge 2 ] || usage
command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"

PKI="$1"; CMD="$2"; shift 2
DAYS="${DAYS:-825}"; CA_DAYS="${CA_DAYS:-3650}"; RENEW_DAYS="${RENEW_DAYS:-30}"; FORCE="${FORCE:-0}"
NAME_RE='^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'

newkey() {  # newkey FILE: create an EC P-256 key unless it exists; always enforce 0600
  if [ ! -s "$1" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.tmp" 2>/dev/null
    mv -f "$1.tmp" "$1"
  fi
  chmod 0600 "$1"
}

need_ca() { [ -s "$PKI/ca.key" ] && [ -s "$PKI/ca.crt" ] || die "no CA in $PKI (run: $0 $PKI init SITE_ID)"; }

current() {  # current CERT: true when CERT exists, is signed by this CA, does not expire soon and holds the public
  # key of its key file (NAME.key beside NAME.crt): a key made anew after the old one was lost needs a new certificate
  [ "$FORCE" != 1 ] && [ -s "$1" ] \
    && openssl verify -CAfile "$PKI/ca.crt" "$1" >/dev/null 2>&1 \
    && openssl x509 -in "$1" -noout -checkend $((RENEW_DAYS * 86400)) >/dev/null 2>&1 \
    && [ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "${1%.crt}.key" -pubout 2>/dev/null)" ]
}

sign() {  # sign KEY CERT CN EXTFILE: issue CERT for KEY with subject CN, signed by the site CA
  local csr
  csr="$(mktemp)"
  openssl req -new -key "$1" -subj "/O=edge-emotion/CN=$3" -out "$csr"
  openssl x509 -req -in "$csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$DAYS" -sha256 -extfile "$4" -out "$2.tmp" 2>/dev/null
  rm -f "$csr" "$4"
  chmod 0644 "$2.tmp"
  mv -f "$2.tmp" "$2"
}

cmd_init() {
  [ $# -eq 1 ] || usage
  [[ "$1" =~ $NAME_RE ]] || die "site id '$1' must match $NAME_RE"
  mkdir -p "$PKI"; chmod 0700 "$PKI"
  newkey "$PKI/ca.key"
  if [ -s "$PKI/ca.crt" ] && openssl x509 -in "$PKI/ca.crt" -noout -checkend 0 >/dev/null 2>&1; then
    echo "ok: $PKI/ca.crt exists ($(openssl x509 -in "$PKI/ca.crt" -noout -subject))"
    return
  fi
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/O=edge-emotion/CN=edge-emotion $1 CA" -days "$CA_DAYS" \
    -sha256 -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$PKI/ca.crt.tmp"
  chmod 0644 "$PKI/ca.crt.tmp"; mv -f "$PKI/ca.crt.tmp" "$PKI/ca.crt"
  echo "created: $PKI/ca.crt (site $1, $CA_DAYS days)"
}

cmd_server() {
  [ $# -ge 1 ] || usage
  need_ca
  local san="" want="" h ext shown
  for h in "$@"; do
    if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then
      san+="${san:+,}IP:$h"
      shown="$h"  # openssl prints IPv6 SANs expanded, e.g. ::1 as 0:0:0:0:0:0:0:1: compare in its form
      if [[ "$h" == *:* ]]; then
        shown="$(python3 -c 'import ipaddress, sys
print(":".join(f"{int(g, 16):X}" for g in ipaddress.IPv6Address(sys.argv[1]).exploded.split(":")))' "$h")" \
          || die "'$h' is not an IPv6 address"
      fi
      want+="${want:+,}IP:$shown"
    else
      san+="${san:+,}DNS:$h"; want+="${want:+,}DNS:$h"
    fi
  done
  newkey "$PKI/server.key"
  if current "$PKI/server.crt"; then
    local have
    have="$(openssl x509 -in "$PKI/server.crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2 \
      | tr -d ' ' | sed 's/IPAddress:/IP:/g')"
    if [ "$have" = "$want" ]; then echo "ok: $PKI/server.crt is current ($san)"; return; fi
  fi
  ext="$(mktemp)"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=$san" > "$ext"
  sign "$PKI/server.key" "$PKI/server.crt" "$1" "$ext"
  echo "issued: $PKI/server.crt ($san, $DAYS days)"
}

cmd_client() {
  [ $# -ge 1 ] || usage
  need_ca
  mkdir -p "$PKI/clients"
  local n ext
  for n in "$@"; do
    [[ "$n" =~ $NAME_RE ]] || die "client name '$n' must match $NAME_RE (it becomes the MQTT username)"
    newkey "$PKI/clients/$n.key"
    if current "$PKI/clients/$n.crt"; then echo "ok: $PKI/clients/$n.crt is current"; continue; fi
    ext="$(mktemp)"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" > "$ext"
    sign "$PKI/clients/$n.key" "$PKI/clients/$n.crt" "$n" "$ext"
    echo "issued: $PKI/clients/$n.crt (CN=$n, $DAYS days)"
  done
}

cmd_show() {
  need_ca
  local c
  for c in "$PKI/ca.crt" "$PKI/server.crt" "$PKI"/clients/*.crt; do
    [ -s "$c" ] || continue
    printf '%s\t%s\t%s\n' "$c" "$(openssl x509 -in "$c" -noout -subject -nameopt oneline)" \
      "$(openssl x509 -in "$c" -noout -enddate)"
  done
}

case "$CMD" in
  init) cmd_init "$@" ;;
  server) cmd_server "$@" ;;
  client) cmd_client "$@" ;;
  show) cmd_show ;;
  *) usage ;;
esac

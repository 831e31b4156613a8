#!/usr/bin/env bash
# What a cluster needs for authenticated, encrypted fabric links
# (docs/fabric-security.md), made with openssl:
#   scripts/fabric-certs.sh DIR NODE...
# DIR/secret       the cluster secret, 32 random bytes as hex (mode 600)
# DIR/ca.pem       the cluster's CA certificate (P-256), DIR/ca.key its key
# DIR/NODE.pem     a certificate for each NODE, naming it (CN and DNS
#                  subjectAltName), signed by the CA; DIR/NODE.key its key
# Every key and the secret are owner-only (the emulator refuses them
# otherwise). Files that exist are kept: run it again to add nodes. Copy to
# each machine the secret, ca.pem, and that node's NODE.pem and NODE.key
# only; ca.key stays where certificates are made.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR NODE..." >&2; exit 2; }
dir=$1
shift
umask 077
mkdir -p "$dir"
[ -e "$dir/secret" ] || openssl rand -hex 32 >"$dir/secret"
# A configuration of our own: the CA's extensions must not depend on the host's openssl.cnf.
conf="$dir/.openssl.cnf"
trap 'rm -f "$conf" "$dir"/*.csr' EXIT
cat >"$conf" <<'CNF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
if [ ! -e "$dir/ca.key" ]; then
  openssl req -x509 -config "$conf" -extensions ca -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 3650 -subj "/CN=sgiov fabric CA" 2>/dev/null
fi
for n in "$@"; do
  [[ $n =~ ^[a-z0-9_-]{1,32}$ ]] || { echo "$0: node name '$n' must match [a-z0-9_-]{1,32}" >&2; exit 2; }
  [ -e "$dir/$n.pem" ] && continue
  openssl req -new -config "$conf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$n.key" -out "$dir/$n.csr" -subj "/CN=$n" 2>/dev/null
  openssl x509 -req -in "$dir/$n.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/$n.pem" -days 825 2>/dev/null \
    -extfile <(printf 'subjectAltName = DNS:%s\nextendedKeyUsage = serverAuth, clientAuth\nbasicConstraints = CA:FALSE\n' "$n")
done
chmod 644 "$dir/ca.pem" "$dir"/*.pem
echo "$dir: secret, ca.pem, ca.key; NODE.pem and NODE.key for $*" >&2

#!/usr/bin/env bash
# Makes the certificates for Akka remoting over TLS with mutual authentication (docs/architecture.md "Security"):
# a cluster CA (DIR/ca.pem, its key DIR/ca.key) and, per node, DIR/NODE.p12 — the node's certificate and private key
# as PKCS#12, the format Akka.Remote's DotNetty transport loads (disttrain.tls.certificate, --tls-cert). NODE is the
# host name or IP address the node is reached at; it goes into the certificate's subject and subjectAltName.
#
#   scripts/make-certs.sh [--out DIR] [--days N] [--new-ca] NODE [NODE ...]
#
# An existing DIR/ca.pem + ca.key is reused, so nodes can be added later; --new-ca replaces it (every node then needs a
# new certificate). Keys are ECDSA P-256. The .p12 files have no password unless DISTTRAIN_TLS_PASSWORD is set (then
# every node needs it in its environment); they and ca.key are written mode 600. Copy ca.pem and a node's .p12 to that
# node only; keep ca.key off the cluster.
set -euo pipefail
out=certs; days=825; newca=0; nodes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --new-ca) newca=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "make-certs.sh: unknown option $1 (expected --out DIR, --days N, --new-ca, then node names)" >&2; exit 2 ;;
    *) nodes+=("$1"); shift ;;
  esac
done
[ ${#nodes[@]} -gt 0 ] || { echo "make-certs.sh: name at least one node (its host name or IP address), e.g. scripts/make-certs.sh 10.0.0.1 10.0.0.2" >&2; exit 2; }
command -v openssl >/dev/null 2>&1 || { echo "make-certs.sh: openssl is required (Debian: apt-get install openssl)" >&2; exit 1; }
[[ "$days" =~ ^[0-9]+$ ]] && [ "$days" -gt 0 ] || { echo "make-certs.sh: --days must be a positive number of days, not '$days'" >&2; exit 2; }
mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$newca" = 1 ] || [ ! -f "$out/ca.pem" ] || [ ! -f "$out/ca.key" ]; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days "$days" \
    -keyout "$out/ca.key" -out "$out/ca.pem" -subj "/O=DistTrain/CN=DistTrain cluster CA $(date -u +%Y%m%dT%H%M%SZ)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$tmp/err" \
    || { cat "$tmp/err" >&2; exit 1; }
  chmod 644 "$out/ca.pem"
  echo "make-certs: new cluster CA $out/ca.pem (key $out/ca.key: keep it off the nodes)" >&2
fi

for node in "${nodes[@]}"; do
  [[ "$node" =~ ^[A-Za-z0-9._:-]+$ ]] || { echo "make-certs.sh: '$node' is not a host name or IP address" >&2; exit 2; }
  if [[ "$node" =~ ^[0-9.]+$ || "$node" == *:* ]]; then san="IP:$node"; else san="DNS:$node"; fi
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
    -keyout "$tmp/node.key" -out "$tmp/node.csr" -subj "/O=DistTrain/CN=$node" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" >"$tmp/ext"
  openssl x509 -req -in "$tmp/node.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -sha256 -extfile "$tmp/ext" -out "$tmp/node.pem" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  openssl pkcs12 -export -inkey "$tmp/node.key" -in "$tmp/node.pem" -name "$node" \
    -passout "pass:${DISTTRAIN_TLS_PASSWORD:-}" -out "$out/$node.p12" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  cp "$tmp/node.pem" "$out/$node.pem" && chmod 644 "$out/$node.pem"
  echo "make-certs: $out/$node.p12 for $node ($san), signed by $out/ca.pem, valid $days days" >&2
done
echo "use: disttrain node ... --tls-cert $out/NODE.p12 --tls-ca $out/ca.pem (or DISTTRAIN_TLS_CERT / DISTTRAIN_TLS_CA)" >&2

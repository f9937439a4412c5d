#!/usr/bin/env bash
# Regenerates the development CA and the peer certificate compiled into lanspread.
# Run from this directory; see README.md. Needs openssl.
set -euo pipefail
cd "$(dirname "$0")"
days=${DAYS:-3650}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days "$days" -subj "/CN=lanspread development CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout peer.key.sec1 -out peer.csr -subj "/CN=lanspread peer"
printf "subjectAltName=DNS:lanspread\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n" > peer.ext
openssl x509 -req -in peer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out peer.pem -days "$days" -extfile peer.ext
openssl pkcs8 -topk8 -nocrypt -in peer.key.sec1 -out peer.key
# The CA key is only needed to sign; keeping it out of the tree means nobody
# can mint further certificates for this CA.
rm -f ca.key ca.srl peer.csr peer.ext peer.key.sec1

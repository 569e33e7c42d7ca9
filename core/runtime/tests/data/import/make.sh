#!/usr/bin/env bash
# Makes the profile-import fixtures from the test PKI in core/proto/tests/data/pki (test keys
# only: never protect anything real with them). The .p12 files get fresh random salts each run;
# the tests depend only on their structure and passwords.
#
#   client-p256-aes.p12   OpenSSL 3's default: PBES2 AES-256-CBC + PBKDF2-HMAC-SHA256, MAC SHA-256,
#                         the client-p256 key, its certificate and the root CA; password "p12-aes-pw"
#   client-rsa-3des.p12   the legacy scheme: pbeWithSHAAnd3-KeyTripleDES-CBC for key and certs,
#                         MAC SHA-1; the client-rsa key and certificate; password "p12-3des-pw"
#   cert-binary.mobileconfig  cert.mobileconfig.xml (with client-rsa-3des.p12 embedded) written
#                         as a binary plist by Python's plistlib
#   psk-signed.mobileconfig  psk.mobileconfig in a CMS SignedData (signed with the test root
#                         CA's key), the way signed Apple profiles come
#   *.sswan, *.mobileconfig   written by hand from the formats' documentation; the ones that
#                         embed DER/PKCS#12 data are filled in from templates (*.in) here
set -euo pipefail
cd "$(dirname "$0")"
pki=../../../../proto/tests/data/pki

openssl pkcs12 -export -in "$pki/client-p256.crt" -inkey "$pki/client-p256.key" \
    -certfile "$pki/root-ca.crt" -name client-p256 -passout pass:p12-aes-pw \
    -out client-p256-aes.p12
openssl pkcs12 -export -in "$pki/client-rsa.crt" -inkey "$pki/client-rsa.key" \
    -name client-rsa -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 \
    -passout pass:p12-3des-pw -out client-rsa-3des.p12

b64() { base64 -w0 "$1"; }
b64wrapped() { base64 -w52 "$1" | sed 's/^/\t\t\t/'; }
root_der=$(b64 "$pki/root-ca.der")
p12_aes=$(b64 client-p256-aes.p12)

sed -e "s|@ROOT_DER@|$root_der|" eap.sswan.in >eap.sswan
sed -e "s|@ROOT_DER@|$root_der|" -e "s|@P12@|$p12_aes|" cert.sswan.in >cert.sswan

python3 - "$pki" <<'PY'
import base64, plistlib, sys
pki = sys.argv[1]
root = open(f"{pki}/root-ca.der", "rb").read()
p12 = open("client-rsa-3des.p12", "rb").read()
def fill(src, dst):
    text = open(src).read()
    text = text.replace("@ROOT_DER@", base64.b64encode(root).decode())
    text = text.replace("@P12@", base64.b64encode(p12).decode())
    open(dst, "w").write(text)
fill("eap.mobileconfig.in", "eap.mobileconfig")
fill("cert.mobileconfig.in", "cert.mobileconfig.xml")
with open("cert.mobileconfig.xml", "rb") as f:
    value = plistlib.load(f)
with open("cert-binary.mobileconfig", "wb") as f:
    plistlib.dump(value, f, fmt=plistlib.FMT_BINARY)
PY
rm cert.mobileconfig.xml
openssl cms -sign -binary -nodetach -outform DER -in psk.mobileconfig \
    -signer "$pki/root-ca.crt" -inkey "$pki/root-ca.key" -out psk-signed.mobileconfig

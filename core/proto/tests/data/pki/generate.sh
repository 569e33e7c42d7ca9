#!/bin/sh
# Regenerates the test PKI in this directory with strongSwan's `pki` tool (and openssl for
# the PKCS#8 conversions). TEST KEYS ONLY: every private key here is public knowledge.
#
# Layout (all certificates PEM, lifetime 20 years unless noted):
#   root-ca        RSA-3072, self-signed, CA                      "C=CH, O=ref-lab, CN=Roam Test Root CA"
#   client-rsa     RSA-3072 end entity, sha256WithRSAEncryption   (root-ca)
#   client-p256    ECDSA P-256 end entity, sha384WithRSAEncryption (root-ca)
#   client-p384    ECDSA P-384 end entity, sha512WithRSAEncryption (root-ca)
#   client-ed25519 Ed25519 end entity, RSASSA-PSS/SHA-256         (root-ca)
#   server-san     ECDSA P-256, SANs vpn.example.org, 198.51.100.1, user@example.org (root-ca)
#   expired        ECDSA P-256, valid 2015-01-01 .. 2020-01-01     (root-ca)
#   inter1-ca      ECDSA P-384 intermediate CA, sha256WithRSA      (root-ca)
#   inter2-ca      ECDSA P-256 intermediate CA, ecdsa-with-SHA384  (inter1-ca)
#   leaf-inter     Ed25519 end entity, ecdsa-with-SHA256           (inter2-ca)
#   other-ca       Ed25519 self-signed CA                          "C=CH, O=other-lab, CN=Other CA"
#   other-client   ECDSA P-256 end entity, Ed25519 signature       (other-ca)
#   fake-root      ECDSA P-256, self-signed CA with the SAME DN as root-ca (an impostor)
#   forged         ECDSA P-256 end entity issued by fake-root: names root-ca as issuer but
#                  its signature does not verify with root-ca's key
#   noca-child     ECDSA P-256 end entity issued by client-rsa (not a CA)
# chain.pem = inter2-ca + inter1-ca (one PEM bundle); root-ca.der = root-ca in DER;
# root-ca.spki.sha1 = SHA-1 of its subjectPublicKeyInfo, computed by openssl.
# Keys: *.key as `pki --gen` writes them (RSA: PKCS#1, ECDSA: SEC1, Ed25519: PKCS#8);
# client-rsa.pk8.key and client-p256.pk8.key and client-p384.pk8.key are PKCS#8 conversions.
set -eu
cd "$(dirname "$0")"
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
printf 'pki {\n  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp sha1 sha2 hmac curve25519\n}\n' >"$conf"
export STRONGSWAN_CONF="$conf"
LT=7300

gen() { # name type [size]
	if [ $# -eq 3 ]; then
		pki --gen --type "$2" --size "$3" --outform pem >"$1.key"
	else
		pki --gen --type "$2" --outform pem >"$1.key"
	fi
}
issue() { # name issuer dn [extra pki args...]
	name=$1 issuer=$2 dn=$3
	shift 3
	pki --pub --in "$name.key" --type priv |
		pki --issue --cacert "$issuer.crt" --cakey "$issuer.key" --dn "$dn" \
			--outform pem "$@" >"$name.crt"
}

gen root-ca rsa 3072
pki --self --in root-ca.key --type rsa --dn "C=CH, O=ref-lab, CN=Roam Test Root CA" \
	--ca --lifetime $LT --outform pem >root-ca.crt

gen client-rsa rsa 3072
issue client-rsa root-ca "C=CH, O=ref-lab, CN=client-rsa" --lifetime $LT --digest sha256 \
	--san client-rsa.example.org
gen client-p256 ecdsa 256
issue client-p256 root-ca "C=CH, O=ref-lab, CN=client-p256" --lifetime $LT --digest sha384
gen client-p384 ecdsa 384
issue client-p384 root-ca "C=CH, O=ref-lab, CN=client-p384" --lifetime $LT --digest sha512
gen client-ed25519 ed25519
issue client-ed25519 root-ca "C=CH, O=ref-lab, CN=client-ed25519" --lifetime $LT \
	--digest sha256 --rsa-padding pss

gen server-san ecdsa 256
issue server-san root-ca "C=CH, O=ref-lab, OU=VPN, CN=vpn.example.org" --lifetime $LT \
	--san vpn.example.org --san 198.51.100.1 --san user@example.org --flag serverAuth

gen expired ecdsa 256
issue expired root-ca "C=CH, O=ref-lab, CN=expired" --dateform "%Y-%m-%d %H:%M:%S" \
	--not-before "2015-01-01 00:00:00" --not-after "2020-01-01 00:00:00"

gen inter1-ca ecdsa 384
issue inter1-ca root-ca "C=CH, O=ref-lab, CN=Roam Test Intermediate 1" --ca --lifetime $LT \
	--digest sha256
gen inter2-ca ecdsa 256
issue inter2-ca inter1-ca "C=CH, O=ref-lab, CN=Roam Test Intermediate 2" --ca --lifetime $LT \
	--digest sha384
gen leaf-inter ed25519
issue leaf-inter inter2-ca "C=CH, O=ref-lab, CN=leaf-inter" --lifetime $LT --digest sha256

gen other-ca ed25519
pki --self --in other-ca.key --type ed25519 --dn "C=CH, O=other-lab, CN=Other CA" \
	--ca --lifetime $LT --outform pem >other-ca.crt
gen other-client ecdsa 256
issue other-client other-ca "C=CH, O=other-lab, CN=other-client" --lifetime $LT

gen fake-root ecdsa 256
pki --self --in fake-root.key --type ecdsa --dn "C=CH, O=ref-lab, CN=Roam Test Root CA" \
	--ca --lifetime $LT --outform pem >fake-root.crt
gen forged ecdsa 256
issue forged fake-root "C=CH, O=ref-lab, CN=forged" --lifetime $LT --digest sha256

gen noca-child ecdsa 256
# pki refuses to issue from a non-CA certificate, so openssl signs this one.
openssl req -new -key noca-child.key -subj "/C=CH/O=ref-lab/CN=noca-child" -out noca-child.csr
openssl x509 -req -in noca-child.csr -CA client-rsa.crt -CAkey client-rsa.key -set_serial 4242 \
	-days $LT -sha256 -out noca-child.crt 2>/dev/null
rm -f noca-child.csr

for k in client-rsa client-p256 client-p384; do
	openssl pkcs8 -topk8 -nocrypt -in "$k.key" -out "$k.pk8.key"
done

# A bundle of several certificates in one PEM file, and one DER file.
cat inter2-ca.crt inter1-ca.crt >chain.pem
openssl x509 -in root-ca.crt -outform der -out root-ca.der

# The SHA-1 of root-ca's subjectPublicKeyInfo, computed by openssl (what CERTREQ carries).
openssl x509 -in root-ca.crt -pubkey -noout | openssl pkey -pubin -outform der |
	openssl dgst -sha1 -r | cut -d' ' -f1 >root-ca.spki.sha1

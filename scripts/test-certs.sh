#!/usr/bin/env bash
# Makes the certificates routerd's TLS tests use, with openssl, into DIR (made if missing):
#
#   ca.pem ca.key                  the test CA, which the tests trust (tls_ca_file)
#   other-ca.pem                   a CA nobody trusts: a server certificate from it is "untrusted"
#   server.pem server.key          from the CA, for localhost and 127.0.0.1, valid for 30 days
#   wrong-name.pem wrong-name.key  from the CA, for wrong.example only
#   expired.pem expired.key        from the CA, for localhost and 127.0.0.1, valid 1 to 2 January 2020 only
#   untrusted.pem untrusted.key    from other-ca, for localhost and 127.0.0.1
#   client.pem client.key          from the CA, a client certificate (CN=routerd)
#
#   scripts/test-certs.sh DIR
#
# Keys are unencrypted 2048-bit RSA, readable by the servers' own users (the files are for tests only).
set -euo pipefail
dir="${1:?usage: $0 DIR}"
mkdir -p "$dir"
cd "$dir"

key() { openssl genrsa -out "$1" 2048 2>/dev/null; }

ca() { # name subject
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 60 -subj "$2" -out "$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

leaf() { # name issuer subject san usage [startdate enddate]
    local name=$1 issuer=$2 subject=$3 san=$4 usage=$5
    key "$name.key"
    openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
    cat >"$name.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$usage
${san:+subjectAltName=$san}
EXT
    if [ $# -ge 7 ]; then
        # `openssl x509` cannot date a certificate in the past; `openssl ca` can.
        mkdir -p "ca-$name"
        : >"ca-$name/index.txt"
        cat >"ca-$name/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = ca-$name
database = ca-$name/index.txt
new_certs_dir = ca-$name
serial = ca-$name/serial
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
CNF
        echo 01 >"ca-$name/serial"
        openssl ca -batch -config "ca-$name/ca.cnf" -cert "$issuer.pem" -keyfile "$issuer.key" -in "$name.csr" \
            -out "$name.pem" -startdate "$6" -enddate "$7" -extfile "$name.ext" -notext 2>/dev/null
        rm -rf "ca-$name"
    else
        openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial -days 30 \
            -sha256 -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    fi
    rm -f "$name.csr" "$name.ext"
}

ca ca "/CN=routerd test CA"
ca other-ca "/CN=someone else's CA"
leaf server ca "/CN=localhost" "DNS:localhost,IP:127.0.0.1" serverAuth
leaf wrong-name ca "/CN=wrong.example" "DNS:wrong.example" serverAuth
leaf expired ca "/CN=localhost" "DNS:localhost,IP:127.0.0.1" serverAuth 20200101000000Z 20200102000000Z
leaf untrusted other-ca "/CN=localhost" "DNS:localhost,IP:127.0.0.1" serverAuth
leaf client ca "/CN=routerd" "" clientAuth
rm -f ./*.srl
chmod 644 ./*.pem ./*.key

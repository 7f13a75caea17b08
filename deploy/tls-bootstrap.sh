#!/bin/sh
# tls-bootstrap: give nginx a certificate to start with (compose service
# "tls-bootstrap", a one-shot that nginx waits for).
#
# nginx.conf reads /etc/letsencrypt/live/hitcounter/{fullchain,privkey}.pem
# and nginx will not start without them, while certbot needs nginx running
# to answer Let's Encrypt's HTTP-01 challenge. So when no certificate is
# there yet, this writes a short-lived self-signed one, with a marker file
# (.self-signed) beside it; deploy/certbot.sh removes that placeholder before
# it asks Let's Encrypt for the real certificate. A certificate without the
# marker (certbot's) is never touched.
#
# POSIX sh with openssl: runs in the certbot/certbot image (Alpine).
set -eu

live=${LETSENCRYPT_DIR:-/etc/letsencrypt}/live/hitcounter
marker=$live/.self-signed
days=7

if [ -s "$live/fullchain.pem" ] && [ -s "$live/privkey.pem" ]; then
	if [ ! -e "$marker" ]; then
		echo "tls-bootstrap: $live has a certificate: nothing to do"
		exit 0
	fi
	if openssl x509 -checkend 86400 -noout -in "$live/fullchain.pem" >/dev/null; then
		echo "tls-bootstrap: the self-signed placeholder in $live is still valid: nothing to do"
		exit 0
	fi
	echo "tls-bootstrap: the self-signed placeholder in $live expires within a day: replacing it"
fi

# The placeholder names the configured domain when it is a plain host name.
name=${DOMAIN:-}
case $name in
'' | *[!A-Za-z0-9.-]*) name=localhost ;;
esac

umask 077
mkdir -p "$live"
tmp=$(mktemp -d "$live/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-days "$days" -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
	-keyout "$tmp/privkey.pem" -out "$tmp/cert.pem" 2>/dev/null
cp "$tmp/cert.pem" "$tmp/chain.pem"
cp "$tmp/cert.pem" "$tmp/fullchain.pem"
date -u '+self-signed by tls-bootstrap on %Y-%m-%dT%H:%M:%SZ; deploy/certbot.sh replaces it' >"$tmp/.self-signed"
# Marker first, so a half-written placeholder still reads as a placeholder.
for f in .self-signed privkey.pem cert.pem chain.pem fullchain.pem; do
	mv -f "$tmp/$f" "$live/$f"
done
echo "tls-bootstrap: wrote a self-signed certificate for $name to $live, valid $days days, until certbot replaces it"

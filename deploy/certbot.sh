#!/bin/sh
# certbot: get the Let's Encrypt certificate "hitcounter" for $DOMAIN, then
# renew it every 12 hours (compose service "certbot", always part of the
# stack, so that no compose command can leave renewals stopped by mistake).
# Without a DOMAIN it only says so and waits: nginx keeps the self-signed
# placeholder.
#
# The challenge goes through nginx: certbot writes into the webroot volume,
# which nginx serves at /.well-known/acme-challenge/ on port 80. nginx
# reloads itself every 6 hours and so picks up a new certificate by itself;
# for the first one, `docker compose exec nginx nginx -s reload` is quicker.
#
# Environment (from .env): DOMAIN, EMAIL, CERTBOT_STAGING (1: Let's Encrypt's
# staging CA, whose certificates browsers do not trust; 0: real ones), and
# ACME_SERVER: the directory URL of another ACME CA instead of Let's Encrypt
# (e.g. a company CA, or Pebble in the deployment test).
# POSIX sh: runs in the certbot/certbot image (Alpine).
set -eu

# `sleep & wait`, so that `docker compose stop` ends a sleep at once.
trap 'exit 0' TERM INT
pause() {
	sleep "$1" &
	wait $!
}

if [ -z "${DOMAIN:-}" ]; then
	echo "certbot: no DOMAIN in .env: no certificate is requested, nginx serves the self-signed placeholder"
	while :; do pause 24h; done
fi
: "${EMAIL:?set EMAIL in .env: the contact address for the certificate}"
case $DOMAIN in
*[!A-Za-z0-9.-]* | .* | *..*)
	echo "certbot: DOMAIN=$DOMAIN is not a DNS name" >&2
	exit 1
	;;
esac
case ${CERTBOT_STAGING:-0} in
1 | true | yes) staging=1 ;;
0 | false | no | '') staging=0 ;;
*)
	echo "certbot: CERTBOT_STAGING must be 1 or 0, not '$CERTBOT_STAGING'" >&2
	exit 1
	;;
esac
server=${ACME_SERVER:-}
case $server in
'') ;;
https://*)
	if [ "$staging" = 1 ]; then
		echo "certbot: set either ACME_SERVER or CERTBOT_STAGING=1, not both" >&2
		exit 1
	fi
	;;
*)
	echo "certbot: ACME_SERVER must be an https:// ACME directory URL, not '$server'" >&2
	exit 1
	;;
esac

name=hitcounter
le=${LETSENCRYPT_DIR:-/etc/letsencrypt}
live=$le/live/$name
renewal=$le/renewal/$name.conf
webroot=/var/www/certbot
here=$(dirname "$0")

# certbot creates the lineage "hitcounter" only where none is: clear away
# tls-bootstrap's placeholder, and a staging certificate once staging is off.
# nginx keeps serving the certificate it loaded until it reloads.
clear_stand_in() {
	if [ -e "$live/.self-signed" ]; then
		echo "certbot: removing the self-signed placeholder of tls-bootstrap"
	elif [ "$staging" = 0 ] && [ -f "$renewal" ] && grep -q acme-staging "$renewal"; then
		echo "certbot: CERTBOT_STAGING is off: replacing the staging certificate with a trusted one"
	else
		return 0
	fi
	rm -rf "$live" "$le/archive/$name" "$renewal"
}

# Get the certificate, or keep the one there while it is not due for renewal
# (a changed DOMAIN gets a new one). --staging only when asked for.
obtain() {
	if [ "$staging" = 1 ]; then
		set -- --staging
	elif [ -n "$server" ]; then
		set -- --server "$server"
	else
		set --
	fi
	certbot certonly --webroot --webroot-path "$webroot" \
		--cert-name "$name" --domain "$DOMAIN" \
		--email "$EMAIL" --agree-tos --no-eff-email \
		--non-interactive --keep-until-expiring "$@"
}

while :; do
	clear_stand_in
	if obtain; then
		break
	fi
	# Without a certificate on disk nginx could not restart: put the
	# placeholder back, and try again later (Let's Encrypt limits failures).
	if [ ! -s "$live/fullchain.pem" ]; then
		sh "$here/tls-bootstrap.sh"
	fi
	echo "certbot: no certificate for $DOMAIN; is its DNS pointing here, port 80 open? Trying again in 1 hour (or now: docker compose restart certbot)" >&2
	pause 1h
done
echo "certbot: certificate for $DOMAIN ready in $live; nginx loads it at its next 6-hourly reload, or now with: docker compose exec nginx nginx -s reload"

while :; do
	pause 12h
	certbot renew --non-interactive || echo "certbot: renewal failed; trying again in 12 hours" >&2
done

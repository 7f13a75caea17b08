# Stand-in for certbot/certbot: Debian's certbot, with the image's entrypoint.
FROM hitcounter-standin/base
VOLUME /etc/letsencrypt /var/lib/letsencrypt
ENTRYPOINT ["certbot"]

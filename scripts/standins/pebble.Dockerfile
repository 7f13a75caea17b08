# Pebble, Let's Encrypt's test ACME CA, for the deployment test's certbot
# step (not an image of the deployment): the binary of Debian's package,
# unpacked into the context, on the Debian base.
FROM hitcounter-standin/base
COPY usr/bin/pebble /usr/bin/pebble
ENTRYPOINT ["/usr/bin/pebble"]

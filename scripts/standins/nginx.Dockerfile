# Stand-in for nginx:1.30-alpine: Debian's nginx (1.22) with the official
# image's layout: logs to the container's stdout and stderr, nginx in the
# foreground by default.
FROM hitcounter-standin/base
RUN ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log && rm -f /etc/nginx/sites-enabled/default
STOPSIGNAL SIGQUIT
EXPOSE 80 443
CMD ["nginx", "-g", "daemon off;"]

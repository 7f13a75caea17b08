# Stand-in for gcr.io/distroless/static-debian13:nonroot: nothing but the CA
# bundle, /etc/passwd and /etc/group with nonroot (65532), a writable /tmp
# and nonroot's home; no shell. The context holds those files.
FROM scratch
COPY rootfs/ /
USER 65532:65532
WORKDIR /home/nonroot

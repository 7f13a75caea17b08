# Stand-in for golang:VERSION-trixie: the Debian base with this machine's own
# Go toolchain (the build context is its GOROOT's parent), trusting this
# machine's CA bundle so that `go mod download` reaches the module proxy.
FROM hitcounter-standin/base
COPY go /usr/local/go
ENV PATH=/usr/local/go/bin:/go/bin:$PATH GOPATH=/go GOTOOLCHAIN=local
WORKDIR /go

# jbc in a minimal image: a static binary, run as a non-root user, its chain
# in the /data volume. See docs/docker.md.
#
#   docker build -t jbc .
#   docker run -d --name jbc -v jbc:/data -p 4747:4747/tcp -p 4747:4747/udp \
#     -p 127.0.0.1:8080:8080 jbc --mine
#
# Arguments after the image name are flags of "jbc node". To run another
# command: docker run --rm -v jbc:/data --entrypoint jbc jbc chain
#
# Offline builds (no registry, no module proxy) work too: give base images
# built locally and a context carrying vendor/ (go mod vendor):
#
#   docker build --network none --build-arg GO_IMAGE=my-go:local \
#     --build-arg RUNTIME_IMAGE=my-base:local --build-arg GOFLAGS=-mod=vendor .
#
# GO_IMAGE needs Go at least as new as go.mod's go line, on PATH, and
# /bin/sh. RUNTIME_IMAGE needs nothing: the binary is static and the user is
# given by number.

# The builder. GOTOOLCHAIN=local in the official image: a Go older than
# go.mod asks for fails instead of downloading a toolchain.
ARG GO_IMAGE=golang:1.26-bookworm
# The runtime base: no shell, no package manager, a "nonroot" user 65532.
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules get a layer of their own, reused until go.mod or go.sum change.
# With GOFLAGS=-mod=vendor they come from vendor/ in the context instead,
# and the build needs no network.
ARG GOFLAGS=
COPY go.mod go.sum ./
RUN case " $GOFLAGS " in \
      *" -mod=vendor "*) echo "modules: from vendor/" ;; \
      *) go mod download ;; \
    esac
COPY . .
# VERSION is what "jbc version" and the agent string report (default:
# "devel").
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=$VERSION" -o /out/jbc ./cmd/jbc
# An empty directory to become /data, owned by the runtime user (WORKDIR
# creates it without needing mkdir in the builder).
WORKDIR /out/data

FROM ${RUNTIME_IMAGE}
ARG VERSION=
LABEL org.opencontainers.image.title="jbc" \
      org.opencontainers.image.description="jbc, a proof-of-work blockchain node" \
      org.opencontainers.image.source="https://github.com/jbc-project/jbc" \
      org.opencontainers.image.version="$VERSION"
COPY --from=build /out/jbc /usr/local/bin/jbc
# A new named volume mounted on /data starts as a copy of this directory,
# so it is writable by the runtime user.
COPY --from=build --chown=65532:65532 /out/data /data
ENV JBC_DATADIR=/data
USER 65532:65532
VOLUME /data
# libp2p: TCP and QUIC (UDP) on 4747; the HTTP API on 8080.
EXPOSE 4747/tcp 4747/udp 8080/tcp
# The node answers for itself: "jbc status" fails unless its HTTP API
# answers on 127.0.0.1:8080 within 5 s. (Moving the API with --http moves
# it away from this check: see docs/docker.md.)
HEALTHCHECK --interval=10s --timeout=10s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/jbc", "status"]
# "docker run IMAGE --mine ..." passes flags straight to "jbc node". The HTTP
# API listens on every interface of the container so that a published port
# reaches it; a later --http overrides this one (the last flag wins). Keep
# it private by publishing it on 127.0.0.1 only, or not at all.
ENTRYPOINT ["/usr/local/bin/jbc", "node", "--http", "0.0.0.0:8080"]

# syntax=docker/dockerfile:1
# plexmcp in a container: `plexmcp serve` as an unprivileged user, its
# database on a volume. Build and run (README, Deploying):
#   docker build -t plexmcp .
#   docker run -d --name plexmcp -v plexmcp-data:/data -p 127.0.0.1:8470:8470 plexmcp
#   docker exec plexmcp plexmcp keys create --name "Production Server"

# Build stage: the Rust of Cargo.toml's rust-version, on the same Debian
# release as the runtime below, so the binary finds the glibc it was linked to.
FROM rust:1.95-trixie AS builder
WORKDIR /build
# Only what the build reads (.dockerignore keeps target/ out of the context).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY assets ./assets
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin plexmcp \
    && install -m 0755 target/release/plexmcp /usr/local/bin/plexmcp

# Runtime stage: the binary, CA certificates for HTTPS upstreams, a user.
FROM debian:trixie-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin plexmcp \
    && install -d -m 0700 -o plexmcp -g plexmcp /data
COPY --from=builder /usr/local/bin/plexmcp /usr/local/bin/plexmcp

# The database and SQLite's -wal/-shm beside it; a new named volume takes
# this folder's owner and mode.
VOLUME /data
ENV PLEXMCP_DB=/data/plexmcp.db \
    HOME=/data
# All interfaces, or the port could not be published. Plain HTTP: publish
# it on loopback only (as above) and keep a TLS reverse proxy in front.
ENV PLEXMCP_LISTEN=0.0.0.0:8470
EXPOSE 8470
USER plexmcp:plexmcp
# SIGTERM (docker stop): finish in-flight requests, write usage, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["plexmcp"]
CMD ["serve"]

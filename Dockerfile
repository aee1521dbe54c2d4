# syntax=docker/dockerfile:1
#
# One image with the pipeline's three binaries: `scraper` (the default command), `inserter` and `migration`.
#
#   docker build -t social-ingest .
#   docker run --rm social-ingest scraper --help
#   docker run --rm -e DATABASE_URL=postgres://... social-ingest migration up
#
# Stages: chef (the toolchain and cargo-chef) -> planner (the dependency recipe) -> builder (the dependencies,
# cached as their own layer while Cargo.toml/Cargo.lock do not change, then the workspace) -> runtime.

ARG RUST_VERSION=1.95.0
ARG CARGO_CHEF_VERSION=0.1.78

# Debian 13 (trixie) for both stages: bookworm's regular security support ended in 2026.
FROM rust:${RUST_VERSION}-trixie AS chef
ARG CARGO_CHEF_VERSION
# The native parts of the build: rdkafka-sys builds its bundled librdkafka 2.12 with its own ./configure
# (bash) and make, with zlib and OpenSSL (rdkafka's `libz` and `ssl` features: TLS and SASL PLAIN/SCRAM to
# brokers); libz-sys and openssl-sys find Debian's libraries through pkg-config; ring compiles C and
# assembly with cc. The rust image (buildpack-deps) ships all of these already; they are named here so that
# the build does not depend on it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential make pkg-config zlib1g-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --version "${CARGO_CHEF_VERSION}" --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# The dependencies of exactly the packages built below (the same package set, so the same features).
RUN cargo chef cook --release --locked --recipe-path recipe.json -p scraper -p inserter -p migration
COPY . .
RUN cargo build --release --locked -p scraper -p inserter -p migration \
        --bin scraper --bin inserter --bin migration

# The stable release's moving tag: a rebuild picks up its point releases and security fixes.
FROM debian:trixie-slim AS runtime
# ca-certificates: the roots rustls and librdkafka trust (the X API, SSE servers, Postgres and Kafka over
# TLS); libssl3t64 (trixie's name for libssl3 since the 64-bit time_t transition): librdkafka's TLS
# (librdkafka itself is linked statically); curl: the healthchecks. libz, libgcc_s and libc are in the base
# image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3t64 curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 ingest \
    && useradd --system --uid 10001 --gid ingest --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin ingest
COPY --from=builder /app/target/release/scraper /app/target/release/inserter /app/target/release/migration \
    /usr/local/bin/
# An empty directory the service user cannot write to (the binaries look for an optional .env here).
WORKDIR /srv/ingest
USER 10001:10001
ENV RUST_LOG=info
# scraper: SCRAPER_METRICS_ADDR; inserter: METRICS_ADDR; /metrics and /healthz. The binaries listen on 127.0.0.1
# (9101, 9102) unless told otherwise: set 0.0.0.0:9101 / 0.0.0.0:9102 to reach them from outside the container,
# as docker-compose.yml does.
EXPOSE 9101 9102
ENTRYPOINT []
CMD ["scraper"]

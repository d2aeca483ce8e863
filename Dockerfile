# fc-host as one static binary (x86_64-unknown-linux-musl, static PIE) in an
# otherwise empty image: no shell, no libc, no package manager.
#
#   docker build -t femtoclaw .
#   docker run --rm -v "$PWD:/work" -w /work femtoclaw run --policy Strict --brain remote --task "…"
#
# The state directory (journal, compile cache, pulled bundles) is /state: mount
# a volume there to keep runs across containers. docs/install.md has the rest.
#
# Serve nodes sharing a PostgreSQL database (docs/fleet.md, deploy/) need the
# `postgres` feature:
#
#   docker build --build-arg FEATURES=postgres -t femtoclaw:fleet .
FROM docker.io/library/rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the toolchain (with wasm32-wasip2); `rustup
# toolchain install` without a name installs what it pins.
RUN rustup toolchain install \
    && rustup target add x86_64-unknown-linux-musl
ARG FEATURES=""
RUN CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin fc-host --bin femtoclaw \
        --features "$FEATURES" \
    && mkdir -p /out/state \
    && cp target/x86_64-unknown-linux-musl/release/fc-host target/x86_64-unknown-linux-musl/release/femtoclaw /out/

FROM scratch
# TLS to model providers and registries verifies against these roots.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/fc-host /out/femtoclaw /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/state /state
ENV FC_STATE_DIR=/state HOME=/state
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fc-host"]
CMD ["--help"]

# Capstan runtime image: build on Debian bookworm, run on bookworm-slim with GStreamer.
# Package lists come from scripts/deps/ — the same files scripts/install-deps.sh installs —
# so the image and a bare-metal install cannot drift.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY scripts/deps/build.txt scripts/deps/build.txt
RUN apt-get update \
 && grep -hv '^\s*#' scripts/deps/build.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin capstan

FROM debian:bookworm-slim
COPY scripts/deps/runtime.txt /tmp/runtime.txt
RUN apt-get update \
 && grep -hv '^\s*#' /tmp/runtime.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime.txt \
 && useradd --system --uid 10001 --home-dir /var/lib/capstan --create-home capstan
COPY --from=build /src/target/release/capstan /usr/local/bin/capstan
USER capstan
ENV CAPSTAN_HTTP_ADDR=0.0.0.0:8080 \
    CAPSTAN_DATA_DIR=/var/lib/capstan \
    CAPSTAN_RTC_UDP_PORTS=50000-50199 \
    CAPSTAN_RTC_BIND_IPS=0.0.0.0
VOLUME /var/lib/capstan
EXPOSE 8080/tcp 50000-50199/udp
ENTRYPOINT ["/usr/local/bin/capstan"]
CMD ["serve"]

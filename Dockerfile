# walletstream in a container: docs/OPERATIONS.md ("Containers").
#
#   docker build -t walletstream .
#   docker run --rm -p 127.0.0.1:8000:8000 -v ws-data:/var/lib/walletstream walletstream
#   docker compose up          # with a real Kafka (KRaft), see compose.yaml
#
# Two stages: the build stage has Debian 12's -dev packages and the
# compiler; the runtime stage has only the shared libraries walletstream
# links (and what they pull in), curl for the health check, lmdb-utils for
# live backups (mdb_copy), and runs as an unprivileged user.

# ---------------------------------------------------------------- build
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        librdkafka-dev liblmdb-dev libmicrohttpd-dev libjsmn-dev libxxhash-dev \
        libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY src/ src/
# The binary target itself: `make all` would run scripts/install-deps
# build, whose packages the step above installed already.
RUN make build/walletstream \
 && strip build/walletstream \
 && build/walletstream --version

# -------------------------------------------------------------- runtime
FROM debian:12-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 liblmdb0 libmicrohttpd12 libxxhash0 libcurl4 \
        ca-certificates curl lmdb-utils \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 walletstream \
 && useradd --system --uid 10001 --gid walletstream --no-create-home \
        --home-dir /var/lib/walletstream --shell /usr/sbin/nologin walletstream \
 && mkdir -p /var/lib/walletstream \
 && chown walletstream:walletstream /var/lib/walletstream
COPY --from=build /src/build/walletstream /usr/local/bin/walletstream

# Every option is also a WALLETSTREAM_* variable (docs/CONFIGURATION.md);
# WALLETSTREAM_BROKERS unset means localhost:9092, which inside a container
# is rarely a broker: set it (compose.yaml does).
ENV WALLETSTREAM_DATA_DIR=/var/lib/walletstream/data
VOLUME ["/var/lib/walletstream"]
WORKDIR /var/lib/walletstream
USER walletstream:walletstream
EXPOSE 8000
# /readyz is 200 once the store is open and every partition is assigned
# and positioned; 503 with a reason otherwise (docs/OPERATIONS.md).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8000/readyz || exit 1
# SIGTERM commits the current batch and exits 0; give it time
# (`docker stop -t 60`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/walletstream"]
CMD ["run", "--listen", "0.0.0.0:8000"]

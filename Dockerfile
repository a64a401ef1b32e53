# The task manager's image (BuildKit: Docker 23 and later build with it by default; on
# older engines set DOCKER_BUILDKIT=1). README "Run in a container" has the commands.
#
#   docker build -t service-task-manager .
#
# Behind a proxy with its own certificate authority, hand pip the CA bundle as a build
# secret (it stays out of every layer), and the index settings as build arguments or
# a pip.conf secret:
#
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
#       --build-arg PIP_INDEX_URL=https://pypi.example.com/simple -t service-task-manager .

# Any Debian-based Python >= 3.11 image with venv and apt; every stage starts from it,
# so the virtual environment runs on the interpreter it was made with.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- 1. wheels: the dependencies pyproject.toml lists, downloaded or built as wheels.
FROM ${BASE_IMAGE} AS wheels
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
# More requirements to build into the image, space-separated (say, an engine that
# pyproject.toml does not list).
ARG EXTRA_PACKAGES=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY pyproject.toml /src/pyproject.toml
# Only pyproject.toml is in this stage: a change of the code leaves these wheels cached.
RUN --mount=type=secret,id=ca --mount=type=secret,id=pip \
    --mount=type=cache,target=/root/.cache/pip \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    if [ -s /run/secrets/pip ]; then export PIP_CONFIG_FILE=/run/secrets/pip; fi; \
    python3 -m venv /opt/build; \
    mkdir /wheels; \
    /opt/build/bin/python -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
        /src/pyproject.toml > /wheels/requirements.txt; \
    for package in ${EXTRA_PACKAGES}; do echo "${package}" >> /wheels/requirements.txt; done; \
    /opt/build/bin/pip wheel --quiet --wheel-dir /wheels -r /wheels/requirements.txt

# ---- 2. source: the service's code, byte-compiled (the runtime user cannot write there).
FROM ${BASE_IMAGE} AS source
COPY . /app
RUN python3 -m compileall -q /app

# ---- 3. runtime
FROM ${BASE_IMAGE}
# curl: ILPS's compose checks health with it (the slim images lack it); tini: PID 1,
# which passes SIGTERM on to the service and reaps what the embedded PostgreSQL's
# pg_ctl leaves to it. Images that have both are left as they are.
RUN set -eu; \
    missing=""; \
    command -v curl >/dev/null || missing="curl"; \
    command -v tini >/dev/null || missing="${missing} tini"; \
    if [ -n "${missing}" ]; then \
        apt-get update -qq; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing} >/dev/null; \
        apt-get clean; \
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    fi; \
    groupadd --system --gid 10001 manager; \
    useradd --system --uid 10001 --gid manager --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin manager; \
    mkdir /data; \
    chown manager:manager /data
# From the wheels only: no index, no compiler, no network.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet --no-cache-dir --no-index --find-links=/wheels \
        --disable-pip-version-check -r /wheels/requirements.txt
COPY --from=source /app /app

# Defaults for a container (README "Run in a container"); every one can be overridden.
#  - ILPS's .env cannot turn the legacy routes and GET /health on, so the image does;
#    they answer only peers in MANAGER_TRUSTED_NETWORKS (loopback and private ranges).
#  - No development token in the logs: `docker exec <c> python run.py token --user <uuid>`.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MANAGER_HTTP_HOST=0.0.0.0 \
    MANAGER_HTTP_PORT=8064 \
    MANAGER_DATA_DIR=/data \
    MANAGER_LOG_FORMAT=json \
    MANAGER_ILPS_COMPAT=true \
    MANAGER_PRINT_DEV_TOKEN=false
WORKDIR /app
USER manager
# The embedded PostgreSQL (when MANAGER_DB_POSTGRES_HOST is unset), the generated JWT
# and webhook secrets, the metrics files.
VOLUME ["/data"]
EXPOSE 8064
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${MANAGER_HTTP_PORT}/readyz" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--"]
# Migrations run at start (under a lock: replicas that start together migrate once).
CMD ["python", "run.py"]

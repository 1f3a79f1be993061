# `make run`: set up and run the farm (web server + task worker) on SQLite by default.
# `make test`: the whole test suite against PostgreSQL.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIND ?= 127.0.0.1:8000
WEB_WORKERS ?= 2
WEB_THREADS ?= 32

PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: run check-bind test test-pi lint venv dev-venv mirror-venv lock migrate bench clean

# Production installs only the runtime lock; the test tools come from requirements-dev.txt.
# Each venv first brings its own known pip (requirements-pip.txt, with hashes): the pip that
# `python3 -m venv` gives differs from machine to machine and older ones refuse our locks.
$(VENV)/.installed: requirements.txt requirements-pip.txt builder/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes -r requirements-pip.txt
	$(PIP) --require-hashes -r requirements.txt
	$(PIP) --no-deps -e ./builder
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PIP) --require-hashes -r requirements-dev.txt
	touch $@

# The mirror client the mirroring test runs (tests/index/test_mirror.py), bandersnatch in
# a virtualenv of its own: its dependencies (aiohttp, ...) are none of the farm's.
MIRROR_VENV := .venv-mirror
$(MIRROR_VENV)/.installed: requirements-mirror.txt requirements-pip.txt
	test -x $(MIRROR_VENV)/bin/python || $(PYTHON) -m venv $(MIRROR_VENV)
	$(MIRROR_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	  --require-hashes -r requirements-pip.txt
	$(MIRROR_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	  --require-hashes -r requirements-mirror.txt
	touch $@

venv: $(VENV)/.installed

dev-venv: $(VENV)/.dev-installed

mirror-venv: $(MIRROR_VENV)/.installed

# Recompile the locks from the short .in files (needs uv, from the dev lock).
lock:
	$(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 requirements-pip.in -o requirements-pip.txt
	$(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 requirements.in -o requirements.txt
	$(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 requirements-dev.in -o requirements-dev.txt
	$(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 requirements-mirror.in -o requirements-mirror.txt

migrate: venv
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0

# Debug pages (settings, paths, the database's name on every 500) only when asked:
# `make run DEBUG=true`. Without DEBUG the farm needs a SECRET_KEY of its own: one is made
# once into var/secret_key unless SECRET_KEY or SECRET_KEY_FILE is given. It serves plain
# HTTP on $(BIND), so its cookies are not HTTPS-only (SECURE_COOKIES=false). These hold
# for `run` and what it makes first (migrate), not for `make test`.
RUN_SECRET := $(if $(SECRET_KEY)$(SECRET_KEY_FILE),,var/secret_key)
run: export DEBUG ?= false
run: export SECURE_COOKIES ?= false
run: export SECRET_KEY_FILE := $(or $(SECRET_KEY_FILE),$(if $(SECRET_KEY),,$(CURDIR)/var/secret_key))

var/secret_key:
	mkdir -p var
	umask 077; $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

# The web server (scripts/run-web: nginx in front of gunicorn where nginx is installed,
# so that slow clients meet nginx, not gunicorn's threads) and the task worker run in
# process groups of their own (set -m), so that Ctrl-C reaches them once, from the trap:
# django-q's cluster can hang when a second signal lands while it stops.
# gunicorn's control socket is this checkout's own (var/), not ~/.gunicorn/gunicorn.ctl,
# which every gunicorn of one user would otherwise share. A taken BIND stops it before
# anything starts (scripts/check-bind); if either process ends on its own, the other is
# stopped and make run fails with its status (Ctrl-C is a normal stop).
run: check-bind $(RUN_SECRET) migrate
	@echo "web: http://$(BIND)/  (Ctrl-C stops the web server and the task worker)"
	@set -m; \
	$(PY) scripts/run-web $(BIND) $(WEB_WORKERS) $(WEB_THREADS) --access-logfile - \
	  --control-socket var/gunicorn.ctl & g=$$!; \
	$(PY) manage.py qcluster & q=$$!; \
	stopped=; trap 'stopped=1' INT TERM; wait -n; status=$$?; \
	kill -TERM $$q $$g 2>/dev/null; wait; \
	if [ -z "$$stopped" ] && [ $$status -ne 0 ]; then echo "make run: stopped: a process exited with status $$status" >&2; exit $$status; fi

check-bind:
	@$(PYTHON) scripts/check-bind $(BIND)

lint: dev-venv
	$(VENV)/bin/ruff check .

# Random order (pytest-randomly): the seed is printed first; `make test SEED=N` repeats it.
test: lint mirror-venv
	mkdir -p var/static
	@seed=$${SEED:-$$(( (RANDOM << 15) | RANDOM ))}; echo "random order: make test SEED=$$seed repeats it"; \
	DATABASE_URL=$$(scripts/test-database) $(PY) -m pytest -n 2 -q -p randomly --randomly-seed=$$seed $(PYTEST_ARGS)

# The farm seen from Raspberry Pi userlands (tests_pi/, docs/pi.md): Debian ARM under
# qemu-user, made on first use into /var/cache/piwheels-pi (minutes each; needs root; the
# scripts install debootstrap, qemu-user-static and binfmt-support when missing). Not in
# `make test`, nor in .ci/run: too slow. `make test-pi PYTEST_ARGS='-k bookworm-armhf'`
# runs one userland.
test-pi: dev-venv
	mkdir -p var/static
	DATABASE_URL=$$(scripts/test-database) $(PY) -m pytest -n 0 -q -p no:randomly -rfEs tests_pi $(PYTEST_ARGS)

bench: venv
	@echo "see docs/performance.md: each bench/*.py prints its own figures"

clean:
	rm -rf $(VENV) $(MIRROR_VENV) var

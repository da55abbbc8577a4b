# Yobikake — two commands from a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint test-sqlite test-postgres test-browser lock messages openbao clean

demo: $(STAMP)
	$(BIN)/yobikake demo

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || "$$(scripts/find-python)" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	scripts/run-tests sqlite
	scripts/run-tests postgres
	scripts/run-tests browser

test-sqlite test-postgres test-browser: $(STAMP)
	scripts/run-tests $(@:test-%=%)

# A real OpenBao dev server on 127.0.0.1:8200 (in memory) for the production-like profile.
openbao: $(STAMP)
	$(BIN)/python -m yobikake.vault.devserver --port 8200

# Re-pin after editing pyproject.toml's dependencies.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.12 -o requirements.lock

# Needs GNU gettext (Debian `gettext`); the compiled catalogues are committed.
messages: $(STAMP)
	cd src/yobikake && ../../$(BIN)/yobikake makemessages -l ja -l en --no-obsolete
	cd src/yobikake && ../../$(BIN)/yobikake compilemessages

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

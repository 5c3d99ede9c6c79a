# The two commands of the README: `make run` and `make test`. Everything else is what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
CATALOGS := $(wildcard lms/translations/*/LC_MESSAGES/messages.po)

.PHONY: run test install system-deps translations lint extract-messages bench

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test,dev,planner]'
	touch $@

install: $(BIN)/.installed

system-deps:
	scripts/system-deps.sh

translations: install $(CATALOGS:.po=.mo)

%.mo: %.po
	$(BIN)/pybabel compile --statistics -i $< -o $@

# Developers: collect new UI strings into the catalogs (then translate every empty msgstr).
extract-messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k _n:1,2 --no-location -o lms/translations/messages.pot .
	$(BIN)/pybabel update -i lms/translations/messages.pot -d lms/translations --no-fuzzy-matching

run: install system-deps translations
	$(BIN)/lms init
	$(BIN)/lms demo
	$(BIN)/lms run --host $(HOST) --port $(PORT)

# Speed measurements (not tests): grading against stock nbgrader, and the lab planner.
bench: install system-deps
	$(BIN)/python bench/grading.py
	$(BIN)/python bench/planner.py

lint: install
	$(BIN)/ruff check lms labs curriculum graders tests bench
	$(BIN)/mypy lms labs curriculum graders

# The whole suite on SQLite (browser tests included), then again on PostgreSQL (less the checks of
# the shipped course files, which never touch the database).
test: install system-deps translations lint
	$(BIN)/python -m pytest
	@if [ "$${LMS_SKIP_POSTGRES:-0}" = 1 ]; then echo "LMS_SKIP_POSTGRES=1: PostgreSQL run skipped"; else \
	  scripts/test-services.sh && LMS_TEST_DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest -m "not content"; fi

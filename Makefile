# The two commands of the quick start are `make demo` and `make test`; both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit test-integration lint kafka-up kafka-down clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh scripts/tools.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	bash scripts/tools.sh
	touch $(STAMP)

demo: install
	$(BIN)/cwn demo --alerts 20000 --follow

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -n 2 --dist loadfile tests

test-unit: install
	$(BIN)/pytest -q tests/unit

test-integration: install
	$(BIN)/pytest -q -n 2 --dist loadfile tests/integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

kafka-up: install
	$(BIN)/cwn kafka up

kafka-down: install
	$(BIN)/cwn kafka down

clean:
	-$(BIN)/cwn kafka down
	rm -rf .cwn $(VENV) .pytest_cache .ruff_cache .hypothesis

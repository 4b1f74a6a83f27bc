# Flywheel: every entry point. The first call installs uv and the Python environment.
UV := scripts/uv
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
# Every member's sources in one mypy run; each test folder in its own (they share module names
# such as conftest).
SOURCES := $(wildcard contracts/src deploy/*/src services/*/src)
TEST_DIRS := $(wildcard contracts/tests deploy/*/tests services/*/tests) tests

.PHONY: help env demo test test-unit bench lint format stack-up stack-down stack-status stack-reset topics

help:
	@echo "make demo          run the demo on the local stack"
	@echo "make test          install everything, start the stack, run all tests, stop what it started"
	@echo "make test-unit     only the tests that need no server"
	@echo "make bench         benchmarks (print figures)"
	@echo "make lint          ruff + mypy"
	@echo "make stack-up | stack-down | stack-status | stack-reset | topics"

env:
	@$(UV) sync --frozen --all-packages --all-extras --quiet

demo: env
	@$(RUN) python -m flywheel_localstack.demo

test: env
	$(RUN) pytest -m "not benchmark" $(PYTEST_ARGS)

test-unit: env
	$(RUN) pytest -m unit $(PYTEST_ARGS)

bench: env
	$(RUN) pytest -m benchmark -s $(PYTEST_ARGS)

lint: env
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy $(SOURCES)
	@for dir in $(TEST_DIRS); do echo "mypy $$dir"; $(RUN) mypy $$dir || exit 1; done

format: env
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

stack-up: env
	@$(RUN) flywheel-stack up

stack-down: env
	@$(RUN) flywheel-stack down

stack-status: env
	@$(RUN) flywheel-stack status

stack-reset: env
	@$(RUN) flywheel-stack reset

topics: env
	@$(RUN) flywheel-stack topics

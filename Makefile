# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | md5sum | cut -c1-12)

.PHONY: install run test bench migrate clean

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

run: install
	$(PY) manage.py runstack

migrate: install
	$(PY) manage.py migrate && $(PY) manage.py migrate --database documents

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf var/ .pytest_cache

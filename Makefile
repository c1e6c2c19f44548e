# segscope: `make demo` and `make test` each create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.segscope-installed

.PHONY: demo test test-slow bench bench-3d lint chromium clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,onnx,web]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/segscope demo --out demo_out

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/isbi_unet_cv.py

# Deep learning for 3D: 3-D U-Net vs 2-D U-Net slice by slice on both shared volumes, then PointNet parts.
bench-3d: $(STAMP)
	$(BIN)/python benchmarks/volumes_3d_vs_2d.py --budget 210 --volumes em_mito3d --out bench_out/volumes
	$(BIN)/python benchmarks/volumes_3d_vs_2d.py --budget 120 --volumes isbi2012_stack --out bench_out/volumes
	$(BIN)/python benchmarks/pointnet_parts.py --out bench_out/pointnet_parts

# The report's browser test needs Debian's chromium; install it when missing (skipped if apt is unavailable).
chromium:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

clean:
	rm -rf $(VENV) demo_out .pytest_cache

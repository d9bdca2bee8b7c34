# The two commands a person needs: `make demo` and `make test`.
# Both install what they need (apt packages, a virtualenv at .venv) and are
# fast when everything is already there.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
# command:Debian package — the command each test or the demo runs, and the
# package that brings it (exiftool is the outside reader of our XMP sidecars,
# chromium renders the HTML report headless; unshare, ip and openssl fence
# the download bench off the network; mkfs.btrfs makes the one-disk,
# several-subvolumes filesystem the disk-independence tests mount).
APT_NEEDS := syncthing:syncthing ffmpeg:ffmpeg ffprobe:ffmpeg rsync:rsync chromium:chromium \
	exiftool:libimage-exiftool-perl setpriv:util-linux systemd-analyze:systemd \
	unshare:util-linux ip:iproute2 openssl:openssl chattr:e2fsprogs mkfs.btrfs:btrfs-progs \
	mkfs.exfat:exfatprogs mount.exfat-fuse:exfat-fuse capsh:libcap2-bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all test lint demo bench apt clean

all: test

apt:
	@missing=""; \
	for need in $(APT_NEEDS); do \
	  cmd=$${need%%:*}; pkg=$${need#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check reconciler providers tests bench
	$(BIN)/ruff format --check reconciler providers tests bench
	$(BIN)/mypy

# HYPOTHESIS_PROFILE=ci: the safety property over 2,000 worlds (tests/conftest.py).
test: apt $(STAMP) lint
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest

demo: apt $(STAMP)
	$(BIN)/python -m reconciler.demo

bench: apt $(STAMP)
	$(BIN)/python bench/noop_plan.py --items 100000
	$(BIN)/python bench/plan_curve.py --sizes 1000,10000,100000 --plot docs/benchmarks.png
	$(BIN)/python bench/hashing.py
	$(BIN)/python bench/media.py
	$(BIN)/python bench/download.py
	$(BIN)/python bench/phone_proof.py
	$(BIN)/python bench/import_legacy.py --rows 1000
	$(BIN)/python bench/report.py
	$(BIN)/python bench/icloud_incremental.py
	$(BIN)/python bench/removal_mounts.py
	$(BIN)/python bench/census.py
	$(BIN)/python bench/sidecar_plan.py

clean:
	rm -rf $(VENV) demo-run .pytest_cache .mypy_cache .ruff_cache

# The two commands a person needs: `make run` (the station on the simulated van) and `make test`.
# Both install what they need on Debian 12 (apt packages when missing, a venv in .venv/, the project editable).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

# Build and runtime libraries of the design-card bindings (pycups, python-sane, systemd-python, pulsectl).
APT_BUILD := python3-venv python3-dev gcc pkg-config libcups2-dev libsane-dev libsystemd-dev libpulse0 \
             libgirepository1.0-dev libcairo2-dev libdbus-1-dev libglib2.0-dev
# Real services the integration tests start privately (each fixture says which package it needs).
APT_TEST  := cups cups-ipp-utils cups-client dbus sane-utils libsane1 pulseaudio pulseaudio-utils chromium \
             nut-server umockdev gir1.2-umockdev-1.0 unpaper socat systemd faketime \
             xserver-xorg-core xserver-xorg-video-dummy xserver-xephyr xauth x11-xserver-utils x11-apps xclip xinput \
             mkosi debootstrap systemd-container \
             mosquitto mosquitto-clients openssl
# The printer's driverless path (tests/integration/test_printer_cups.py, test_image_discovery.py): CUPS's filters,
# Avahi and ipp-usb with the image's configuration.
APT_TEST  += cups-filters ghostscript avahi-daemon avahi-utils ipp-usb iproute2 util-linux
# The real NetworkManager in a network namespace (tests/integration/test_uplinks_real_networkmanager.py), DHCP at
# its links' far ends from dnsmasq.
APT_TEST  += network-manager dnsmasq-base
# The citizen's USB sticks (tests/integration/test_media*.py): FUSE drivers on file images.
APT_TEST  += fuse3 fusefat exfat-fuse exfatprogs ntfs-3g dosfstools
# A/B updates (tests/integration/test_update_*.py, benchmarks/update.py): the real RAUC service on a private D-Bus,
# debugfs to read a slot, curl as the download's peer in the benchmark.
APT_TEST  += rauc squashfs-tools e2fsprogs curl
# The image and the virtual van (tests/vm/, `make vm-test`): mkosi builds the tree, mtools/dosfstools/e2fsprogs/fdisk
# assemble the disk without mounting anything, qemu boots it through OVMF.
APT_IMAGE := mkosi debootstrap systemd-container mtools dosfstools e2fsprogs fdisk rauc squashfs-tools openssl
APT_VM    := $(APT_IMAGE) qemu-system-x86 qemu-utils ovmf

# Installs the Debian packages in $(1) that are not installed yet (root only; otherwise says what to run).
define apt_ensure
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	missing=$$(echo $$missing); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "missing Debian packages: $$missing -- run: sudo apt-get install $$missing"; exit 1; fi; \
	  echo "apt: installing $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 $$missing; \
	  case " $$missing " in *" network-manager "*) \
	    echo "apt: NetworkManager installed for its test only: disabled here, it must not take this machine's links"; \
	    systemctl disable --now NetworkManager.service NetworkManager-wait-online.service >/dev/null 2>&1 || true;; \
	  esac; \
	fi
endef

.PHONY: run test lint typecheck unit integration vm-test vm-update-test bench soak docs clean image

$(VENV)/.installed: pyproject.toml
	$(call apt_ensure,$(APT_BUILD))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(VENV)/.test-services: Makefile
	$(call apt_ensure,$(APT_TEST) $(APT_VM))
	@# the USB stick tests run their FUSE drivers unprivileged with allow_other, as the image does (mkosi.postinst)
	@grep -qx user_allow_other /etc/fuse.conf 2>/dev/null || { [ "$$(id -u)" -eq 0 ] && echo user_allow_other >> /etc/fuse.conf; } \
	  || { echo "/etc/fuse.conf needs user_allow_other -- run: echo user_allow_other | sudo tee -a /etc/fuse.conf"; exit 1; }
	touch $@

run: $(VENV)/.installed
	$(BIN)/kioskd $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check kioskd drivers tests benchmarks
	$(BIN)/ruff format --check kioskd drivers tests benchmarks
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest -q tests/unit

integration: $(VENV)/.installed $(VENV)/.test-services
	$(BIN)/pytest -q tests/integration

# tests/ holds unit, integration and vm: `make test` runs the virtual van too (about 10 minutes of it under TCG), but
# not its A/B update story (`make vm-update-test`: four boots and two installs, far beyond that budget).
VM_UPDATE_TEST := tests/vm/test_update.py
test: $(VENV)/.installed $(VENV)/.test-services lint typecheck
	$(BIN)/pytest -q tests --ignore=$(VM_UPDATE_TEST)

# The virtual van alone: builds the disk (cached by its inputs), boots it in qemu and drives it from outside.
vm-test: $(VENV)/.installed $(VENV)/.test-services
	$(BIN)/pytest -q tests/vm --ignore=$(VM_UPDATE_TEST)

# The A/B updates in the virtual van (image-build/update/README.md): v1, v2 written at the end of the day and booted
# from root B, v3 abandoned after its failed try. Its own qemu run; each phase's time printed as it ends.
vm-update-test: $(VENV)/.installed $(VENV)/.test-services
	$(BIN)/pytest -q -s $(VM_UPDATE_TEST)

# The profile reference is generated from the code (a unit test checks the committed copy is current).
docs: $(VENV)/.installed
	$(BIN)/kioskctl profile schema > docs/profile.md

# The van's image for one vehicle (image-build/README.md): `make image PROFILE=profiles/<van>.toml [FORMAT=disk]`.
PROFILE ?= profiles/sim.toml
FORMAT  ?= directory
image: $(VENV)/.installed
	$(call apt_ensure,$(APT_IMAGE))
	$(BIN)/python image-build/build.py --profile $(PROFILE) --format $(FORMAT) $(if $(OUT),--out $(OUT)) $(ARGS)

# The long proof (not in `make test`): the fuzzers at 10,000 examples, then 1,000 sessions through a real kioskd.
soak: $(VENV)/.installed $(VENV)/.test-services
	KIOSK_FUZZ_EXAMPLES=10000 $(BIN)/pytest -q tests/unit/test_fuzz.py tests/integration/test_api_fuzz.py
	$(BIN)/python benchmarks/soak.py --sessions 1000 --chromium-every 50

bench: $(VENV)/.installed
	for b in benchmarks/*.py; do [ $$b = benchmarks/soak.py ] || $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

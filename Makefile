# sparkwire: the two commands of the quick start.
#   make demo   installs what is missing, builds, runs cloudmon on a bundled sample with its keyfile
#   make test   installs what is missing, builds twice (normal, ASan+UBSan) and runs the whole suite in each

SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
DEMO_SAMPLE ?= samples/healthy

# Debian packages the build, the tests and the demo need.
PKGS := build-essential pkg-config meson ninja-build python3 python3-cryptography openssl libssl-dev libglib2.0-dev \
        libjson-c-dev libcoap3-dev libcmocka-dev libpcap-dev libncurses-dev \
        libwireshark-dev wireshark-dev tshark tcpdump tcpreplay tmux util-linux iproute2 \
        gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi \
        clang libclang-rt-14-dev \
        dpkg-dev debhelper fakeroot lintian bash-completion groff-base \
        libmicrohttpd-dev prometheus chromium ruby-mdl rsyslog mmdebstrap

.PHONY: all deps build build-asan test demo clean install-plugin

all: build

deps:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	meson setup $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Db_lto=false \
	  -Dplugin_chroot_dir=$(CURDIR)/$(BUILD)/ws-chroots

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

test: build build-asan
	@rc=0; \
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 || rc=1; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --num-processes 2 --timeout-multiplier 3 || rc=1; \
	python3 tests/summary.py $(BUILD) $(ASAN_BUILD); \
	exit $$rc

demo: build
	@if [ -x $(BUILD)/monitor/cloudmon ]; then \
	  echo "== cloudmon -r $(DEMO_SAMPLE)/capture.pcap -k $(DEMO_SAMPLE)/keyfile"; \
	  $(BUILD)/monitor/cloudmon -r $(DEMO_SAMPLE)/capture.pcap -k $(DEMO_SAMPLE)/keyfile; \
	else \
	  echo "== sparkkeys check $(DEMO_SAMPLE)/keyfile"; \
	  $(BUILD)/keyring/tool/sparkkeys check $(DEMO_SAMPLE)/keyfile; \
	fi

# spark.so alone into the personal Wireshark plugin folder of whoever runs it (no root, nothing else).
SPARK_SO ?= $(BUILD)/dissector/spark.so
install-plugin:
	@if [ -f $(BUILD)/build.ninja ] && [ -w $(BUILD) ]; then ninja -C $(BUILD) dissector/spark.so || exit 1; fi; \
	[ -f "$(SPARK_SO)" ] || { echo "install-plugin: $(SPARK_SO) is missing; build it first: make build"; exit 1; }; \
	ver=$$(pkg-config --modversion wireshark | cut -d. -f1,2) && [ -n "$$ver" ] || \
	  { echo "install-plugin: pkg-config finds no wireshark (apt-get install wireshark-dev)"; exit 1; }; \
	dir="$$HOME/.local/lib/wireshark/plugins/$$ver/epan"; \
	install -d "$$dir" && install -m 0644 "$(SPARK_SO)" "$$dir/spark.so" && echo "installed $$dir/spark.so"; \
	[ "$$(id -u)" != 0 ] || echo "install-plugin: note: Wireshark run as root ignores personal plugin folders"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# routerd: `make run` starts the stock config, `make test` runs every test and the format lint.
SWIFT ?= swift
CONFIG ?= examples/router.yaml

.PHONY: all deps build release run test unit-test example-tests lint docs clean bench bench-filters bench-diode \
	bench-buffer-outage binary completions man install

# `make install PREFIX=/usr DESTDIR=pkgroot`: where the binary, completions, man page and packaging files go.
PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
# `debug` installs the debug build (the install test does, so that it needs no release build).
INSTALL_BUILD ?= release
ROUTERD_BIN = .build/$(INSTALL_BUILD)/routerd
GENERATED = .build/generated-$(INSTALL_BUILD)

all: build

# libyaml (and pkg-config, which SwiftPM uses to find it) must be present before anything builds.
deps:
	@./scripts/ensure-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product routerd

run: release
	$(SWIFT) run -c release routerd -c $(CONFIG)

test: deps
	@./scripts/ensure-test-deps.sh
	$(SWIFT) build --build-tests
# The embedding example, built as a library user builds it: a package of its own that depends on routerd by path.
	$(SWIFT) build --package-path examples/embedding
# Private RabbitMQ and PostgreSQL servers on loopback for the broker and database tests, stopped however they end.
	./scripts/with-test-servers.sh ./scripts/postgres-node.sh run -- $(SWIFT) test --skip-build
	$(MAKE) example-tests
	promtool check config monitoring/prometheus.yml
	promtool test rules monitoring/tests/alerts.test.yml
	./scripts/check-install.sh
	$(MAKE) lint

# The config unit tests of every shipped example (examples/tests/NAME.test.yaml for examples/NAME.yaml).
example-tests:
	@for config in examples/*.yaml; do \
		name=$$(basename $$config .yaml); \
		echo "routerd test -c $$config examples/tests/$$name.test.yaml"; \
		.build/debug/routerd test -c $$config examples/tests/$$name.test.yaml || exit 1; \
	done

# The unit tests alone, with no server: what a library user runs.
unit-test: deps
	$(SWIFT) test --filter "RouterTests|StageTests"

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests Benchmarks \
		examples/embedding/Package.swift examples/embedding/Sources

# Regenerates docs/stages.md from the stage declarations (a test checks that it is current).
docs: build
	.build/debug/routerd stages --format markdown > docs/stages.md

# Benchmarks the release binary with the stock config at several rates (docs/bench.md); BENCH_TOTAL=200000 for a
# quicker run. Prints a table and writes .build/bench/bench-results.json.
bench: release
	python3 scripts/bench.py

# What the filters of the stock topology and of the routing config cost per entry, in-process on one thread (no
# sockets, no outputs): the part of `make bench`'s CPU figure that the filters add (README, "Benchmarks").
bench-filters: deps
	$(SWIFT) build -c release --product filter-bench
	.build/release/filter-bench examples/router.yaml valid errors acks
	.build/release/filter-bench examples/bench-route.yaml valid tidy by_team errors acks

# The two diode tiers with a private RabbitMQ and PostgreSQL, end to end, at several rates (README, "The data-diode
# pipeline"); BENCH_TOTAL=50000 for a quicker run. Writes .build/bench/bench-diode-results.json.
bench-diode: release
	python3 scripts/bench-diode.py

# A RabbitMQ outage under load into a disk-buffered amqp output, with routerd's RSS sampled (README, "Disk
# buffers"); OUTAGE_SECONDS=60 for a quicker run. Writes .build/bench/bench-buffer-outage.json.
bench-buffer-outage: release
	python3 scripts/bench-buffer-outage.py

# The binary `make install` installs: the release build, or the debug one with INSTALL_BUILD=debug.
binary: deps
	$(SWIFT) build -c $(INSTALL_BUILD) --product routerd

# Shell completions from the command line's own declarations (swift-argument-parser's generator).
completions: binary
	mkdir -p $(GENERATED)
	$(ROUTERD_BIN) --generate-completion-script bash > $(GENERATED)/routerd.bash
	$(ROUTERD_BIN) --generate-completion-script zsh > $(GENERATED)/_routerd
	$(ROUTERD_BIN) --generate-completion-script fish > $(GENERATED)/routerd.fish

# The man page, from the same declarations, by the tool behind swift-argument-parser's generate-manual plugin, run
# on the binary as the plugin runs it. (`swift package generate-manual` first builds every product again, with other
# flags than the test build, which then rebuilds everything: minutes on two cores.)
MANUAL_TOOL = .build/argument-parser-tools/debug/generate-manual
man: binary
	$(SWIFT) build --package-path .build/checkouts/swift-argument-parser \
		--scratch-path .build/argument-parser-tools --product generate-manual
	mkdir -p $(GENERATED)
	$(MANUAL_TOOL) $(ROUTERD_BIN) --output-directory $(GENERATED)

install: completions man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d $(DESTDIR)$(PREFIX)/lib/systemd/system \
		$(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(SYSCONFDIR)/logrotate.d $(DESTDIR)$(PREFIX)/share/doc/routerd
	install -m 0755 $(ROUTERD_BIN) $(DESTDIR)$(PREFIX)/bin/routerd
	install -m 0644 $(GENERATED)/routerd.1 $(DESTDIR)$(PREFIX)/share/man/man1/routerd.1
	install -m 0644 $(GENERATED)/routerd.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/routerd
	install -m 0644 $(GENERATED)/_routerd $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_routerd
	install -m 0644 $(GENERATED)/routerd.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/routerd.fish
# The unit names the binary by its path: the installed one.
	sed -e 's|/usr/local/bin/routerd|$(PREFIX)/bin/routerd|g' -e 's|/usr/share/doc/routerd|$(PREFIX)/share/doc/routerd|g' \
		packaging/routerd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/routerd.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/routerd.service
	install -m 0644 packaging/sysusers.d/routerd.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/routerd.conf
	install -m 0644 packaging/logrotate.d/routerd $(DESTDIR)$(SYSCONFDIR)/logrotate.d/routerd
	install -m 0644 README.md CHANGELOG.md $(DESTDIR)$(PREFIX)/share/doc/routerd/

clean:
	rm -rf .build

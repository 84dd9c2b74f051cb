# sertools - speech-emotion-recognition transfer-learning experiments as Unix pipelines.
#
#   make            build the programs into build/bin (installs missing Debian packages first)
#   make check      build, then run the test suite twice: optimised, and under ASan+UBSan
#   make demo       the paper's whole study, small, on the embedded corpus (pipelines/out/)
#   make bench      benchmarks against the reference implementations (not tests)
#   make install    PREFIX=/usr/local: programs and man pages
#
# Every filters/NAME.c is a program; common/*.c is the library they link;
# tests/*.c are test programs; tests/t-* are the tests the runner runs.

SHELL := /bin/bash
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX ?= /usr/local
BUILD ?= build
OPT ?= -O3 -march=native
SAN ?=
PKGS = sox fftw3f openblas msgpack

ifeq ($(SAN),1)
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT = -O1 -march=native
endif

SER_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -g -pthread $(OPT) $(SANFLAGS) -Icommon $(PKG_CFLAGS) $(CFLAGS)
SER_LDFLAGS = -pthread $(SANFLAGS) $(LDFLAGS)
SER_LIBS = $(PKG_LIBS) -lm

# Filled in after build-aux/deps.sh has made sure the packages are there.
PKG_CFLAGS = $(shell cat $(BUILD)/pkg-cflags 2>/dev/null)
PKG_LIBS = $(shell cat $(BUILD)/pkg-libs 2>/dev/null)

PROGS := $(patsubst filters/%.c,%,$(wildcard filters/*.c))
LIB_SRC := $(wildcard common/*.c)
LIB_OBJ := $(patsubst common/%.c,$(BUILD)/obj/common/%.o,$(LIB_SRC))
TEST_SRC := $(wildcard tests/*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BINS := $(addprefix $(BUILD)/bin/,$(PROGS))
SCRIPTS := $(wildcard filters/*.py filters/*.sh)

.PHONY: all check check-fast bench install clean deps deps-demo demo

all: $(BINS) $(TEST_BIN) scripts

$(BUILD)/pkg-cflags: build-aux/deps.sh
	@mkdir -p $(BUILD)
	build-aux/deps.sh build
	pkg-config --libs $(PKGS) > $(BUILD)/pkg-libs
	pkg-config --cflags $(PKGS) > $@

$(BUILD)/obj/%.o: %.c $(wildcard common/*.h) | $(BUILD)/pkg-cflags
	@mkdir -p $(dir $@)
	$(CC) $(SER_CFLAGS) -c -o $@ $<

$(BUILD)/libsertools.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/filters/%.o $(BUILD)/libsertools.a
	@mkdir -p $(dir $@)
	$(CC) $(SER_LDFLAGS) -o $@ $^ $(SER_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(BUILD)/libsertools.a
	@mkdir -p $(dir $@)
	$(CC) $(SER_LDFLAGS) -o $@ $^ $(SER_LIBS)

# Python and shell programs in filters/ are installed like the C ones.
.PHONY: scripts
scripts: | $(BUILD)/pkg-cflags
	@mkdir -p $(BUILD)/bin
	@for s in $(SCRIPTS); do n=$$(basename $${s%.*}); install -m 755 $$s $(BUILD)/bin/$$n; done

deps:
	build-aux/deps.sh check

deps-demo:
	build-aux/deps.sh demo

# The whole study at reduced size on the embedded corpus (pipelines/README.md).
demo: deps-demo all
	$(MAKE) -C pipelines demo BIN=$(CURDIR)/$(BUILD)/bin

# The suite runs on the optimised build, then on an ASan+UBSan build.
check: deps all
	$(MAKE) BUILD=build-asan SAN=1 all
	@rm -f build/check-counts
	@tests/run.sh build "" build/check-counts
	@tests/run.sh build-asan "asan " build/check-counts
	@awk '{p+=$$1; f+=$$2} END {printf "%d passed, %d failed\n", p, f; exit (f>0 || p==0)}' build/check-counts

# Optimised build only, for quick iterations: make check-fast T=stream
check-fast: deps all
	@rm -f $(BUILD)/check-counts
	@tests/run.sh $(BUILD) "" $(BUILD)/check-counts $(T)
	@awk '{p+=$$1; f+=$$2} END {printf "%d passed, %d failed\n", p, f; exit (f>0 || p==0)}' $(BUILD)/check-counts

bench: deps all
	@tests/bench/run.sh $(BUILD) $(B)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin
	@for s in $(SCRIPTS); do n=$$(basename $${s%.*}); install -m 755 $$s $(DESTDIR)$(PREFIX)/bin/$$n; done
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1
	$(if $(wildcard man/*.5),install -m 644 $(wildcard man/*.5) $(DESTDIR)$(PREFIX)/share/man/man5)

clean:
	rm -rf build build-asan

.SECONDARY:

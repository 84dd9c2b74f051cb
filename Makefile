# sertools - speech-emotion-recognition transfer-learning experiments as Unix pipelines.
#
#   make            build the programs into build/bin (installs missing Debian packages first)
#   make check      build (gcc, clang, ASan+UBSan; -Werror), then run the test suite on each
#   make demo       the paper's whole study, small, on the embedded corpus (pipelines/out/)
#   make bench      benchmarks against the reference implementations (not tests)
#   make fuzz       libFuzzer on the input readers (FUZZ_SECONDS=60 per harness, F=name)
#   make lines      the longest functions (none over 80 lines without a reason)
#   make mutants    plant the bugs of tests/mutants/ one at a time: the tests must catch each (M=names)
#   make install    PREFIX=/usr/local: programs and man pages
#
# Every filters/NAME.c is a program; common/*.c is the library they link;
# tests/*.c are test programs; tests/t-* are the tests the runner runs.

SHELL := /bin/bash
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX ?= /usr/local
BUILD ?= build
PKGS = sox fftw3f fftw3 openblas

# Flags.  The default build is portable: it runs on any x86-64-v2 CPU, and
# the hot kernels carry AVX2 and AVX-512 variants chosen at run time
# (common/cpu.h), so one build/bin serves every host of a sweep.
#   NATIVE=1  also -march=native (only for the CPU it was built on)
#   WERROR=1  warnings are errors (make check and CI; never a user's default)
#   SAN=1     AddressSanitizer + UndefinedBehaviorSanitizer
#   VARIANT=baseline|avx2|avx512f  every kernel in that variant only, not
#             chosen at run time (make check's variant builds, common/cpu.h)
# -ffp-contract=off: no fused multiply-add unless written, so every kernel
# variant (and gcc and clang alike) rounds the same way.  -Wno-psabi: the
# vector types of the kernels never cross a function boundary that is not
# inlined (common/cpu.h), which is what that warning is about.
OPT ?= -O3
NATIVE ?=
VARIANT ?=
WERROR ?=
SAN ?=

ifeq ($(SAN),1)
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT = -O1
endif
ifeq ($(NATIVE),1)
ARCHFLAGS = -march=native -DSER_NATIVE=1
endif
ifeq ($(WERROR),1)
WERRFLAGS = -Werror
endif
ifneq ($(VARIANT),)
ifeq ($(filter $(VARIANT),baseline avx2 avx512f),)
$(error VARIANT must be baseline, avx2 or avx512f, not '$(VARIANT)')
endif
ARCHFLAGS = -DSER_VARIANT_$(shell echo $(VARIANT) | tr a-z A-Z)=1
endif

SER_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Wno-psabi $(WERRFLAGS) -g -pthread -ffp-contract=off \
	$(OPT) $(ARCHFLAGS) $(SANFLAGS) -Icommon $(PKG_CFLAGS) $(CFLAGS)
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

.PHONY: all check check-fast variants bench install clean deps deps-demo demo lines mutants fuzz

all: $(BINS) $(TEST_BIN) scripts

$(BUILD)/pkg-cflags: build-aux/deps.sh
	@mkdir -p $(BUILD)
	build-aux/deps.sh build
	pkg-config --libs $(PKGS) > $(BUILD)/pkg-libs
	pkg-config --cflags $(PKGS) > $@

# The compiler and its flags, rewritten only when they change, so that a
# build with other flags (WERROR=1, NATIVE=1, CC=clang) recompiles everything.
$(BUILD)/flags: FORCE | $(BUILD)/pkg-cflags
	@echo '$(CC) $(SER_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(SER_CFLAGS)' > $@

.PHONY: FORCE
FORCE:

$(BUILD)/obj/%.o: %.c $(wildcard common/*.h tests/*.h) $(BUILD)/flags | $(BUILD)/pkg-cflags
	@mkdir -p $(dir $@)
	$(CC) $(SER_CFLAGS) -c -o $@ $<

# t-nn-grad builds the layer kernels again in double by including their sources
$(BUILD)/obj/tests/t-nn-grad.o: common/nn_layers.c common/nn_conv.c

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
# The build uses every core (the user's own -j wins): the demo's clock runs.
demo:
	build-aux/deps.sh demo
	$(MAKE) $(if $(filter -j%,$(MAKEFLAGS)),,-j$$(nproc)) all
	$(MAKE) -C pipelines demo BIN=$(CURDIR)/$(BUILD)/bin

# make check: every build with warnings as errors, then the suite three times:
# the portable gcc build (OpenBLAS as the environment leaves it), the same
# sources built with clang (OpenBLAS forced to one core type), and an
# ASan+UBSan build.  The forced core is Haswell (AVX2) where the CPU has AVX2,
# else Nehalem: never one the CPU cannot run.  Beside them, the programs
# with numeric kernels are built with every kernel in the baseline and in the
# AVX2 variant (build-variants/), which tests/t-kernel-variants.sh compares
# with the build under test byte for byte.
VARIANT_PROGS = bin/melspec bin/bandpass tests/cnn-tool tests/openblas-core
CHECK_CORE ?= $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo Haswell || echo Nehalem)
SUMMARY = awk '{p+=$$1; f+=$$2; s+=$$3} END {printf "%d passed, %d failed, %d skipped\n", p, f, s; exit (f>0 || p==0)}'

check:
	build-aux/deps.sh check
	$(MAKE) WERROR=1 all
	$(MAKE) BUILD=build-clang CC=clang WERROR=1 all
	$(MAKE) BUILD=build-asan SAN=1 WERROR=1 all
	$(MAKE) variants
	@rm -f build/check-counts
	@tests/run.sh build "" build/check-counts
	@OPENBLAS_CORETYPE=$(CHECK_CORE) tests/run.sh build-clang "clang/$(CHECK_CORE) " build/check-counts
	@tests/run.sh build-asan "asan " build/check-counts
	@$(SUMMARY) build/check-counts

variants:
	$(MAKE) BUILD=build-variants/baseline VARIANT=baseline WERROR=1 $(addprefix build-variants/baseline/,$(VARIANT_PROGS))
	$(MAKE) BUILD=build-variants/avx2 VARIANT=avx2 WERROR=1 $(addprefix build-variants/avx2/,$(VARIANT_PROGS))

# Optimised build only, for quick iterations: make check-fast T=stream
check-fast:
	build-aux/deps.sh check
	$(MAKE) all
	$(MAKE) variants
	@rm -f $(BUILD)/check-counts
	@tests/run.sh $(BUILD) "" $(BUILD)/check-counts $(T)
	@$(SUMMARY) $(BUILD)/check-counts

# Benchmarks of the portable build, with a NATIVE=1 build beside it (build-native).
bench:
	build-aux/deps.sh check
	$(MAKE) all
	$(MAKE) BUILD=build-native NATIVE=1 all
	@tests/bench/run.sh $(BUILD) $(B)

# libFuzzer harnesses of the input readers (tests/fuzz/README.md), built with
# clang into build-fuzz: FUZZ_SECONDS per harness (two at a time), F=name
# for one of stream, csv, ckpt, audio.  Findings go to build-fuzz/crashes/.
FUZZ_SECONDS ?= 60
fuzz:
	build-aux/deps.sh check
	build-aux/fuzz.sh run $(FUZZ_SECONDS) $(F)

# The longest functions of common/ and filters/; fails on one over 80 lines
# without a "long:" comment saying why.
lines:
	@build-aux/lines.sh -n 25

# Mutation testing, not part of make check (20-30 minutes on 2 cores): each
# mutant of tests/mutants/ is applied alone to a copy of the tree, which is
# rebuilt and the tests it names run (build-aux/mutants.sh).  M="03 sgd" runs the
# mutants whose names contain 03 or sgd.
mutants:
	build-aux/deps.sh check
	$(MAKE) all
	@build-aux/mutants.sh $(M)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin
	@for s in $(SCRIPTS); do n=$$(basename $${s%.*}); install -m 755 $$s $(DESTDIR)$(PREFIX)/bin/$$n; done
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1
	install -d $(DESTDIR)$(PREFIX)/share/sertools/python
	install -m 644 python/sertools_stream.py $(DESTDIR)$(PREFIX)/share/sertools/python
	$(if $(wildcard man/*.5),install -m 644 $(wildcard man/*.5) $(DESTDIR)$(PREFIX)/share/man/man5)

clean:
	rm -rf build build-asan build-clang build-native build-fuzz build-variants

.SECONDARY:

/*
 * cpu.h - one binary, the best vector instructions of the CPU it runs on.
 *
 * The default build targets any x86-64 CPU (no -march): a build/bin made on
 * one host runs on every host of a sweep.  The kernels whose speed depends
 * on the vector width (the band-pass cascade, the mel front end's frame
 * loops, the network's im2col, small convolutions, BatchNorm, pooling,
 * activations and SGD update) are marked SER_KERNEL: the compiler emits
 * each of them three times, for baseline x86-64, AVX2 and AVX-512, and the
 * dynamic loader binds the best one the CPU supports when the program
 * starts (gcc and clang's target_clones, an ifunc; no state of ours).
 *
 * The variants compute bit-identical results: the build has
 * -ffp-contract=off (no fused multiply-add the source does not write), and
 * without -ffast-math no compiler reorders a sum, so the variants differ in
 * how many lanes an instruction has, never in the arithmetic.  What still
 * differs between CPUs is OpenBLAS's choice of sgemm kernel (its own run-time
 * dispatch, OPENBLAS_CORETYPE), whose summation order is its own.
 *
 * Rules for kernels:
 * - mark every function that holds a hot loop SER_KERNEL, static or not;
 *   a call from one kernel to another goes through the loader's binding,
 *   so each loop runs in the caller's ISA only if it is marked itself;
 * - a helper that takes or returns a vector type must be SER_VINLINE
 *   (always inlined): a vector passed between functions compiled for
 *   different ISAs would be passed in different registers (gcc's -Wpsabi
 *   warning, silenced in the Makefile for this reason only);
 * - never pass a vector type to or from a SER_KERNEL function.
 *
 * NATIVE=1 builds (-march=native, SER_NATIVE) compile everything for the
 * build machine and SER_KERNEL is empty.  Other architectures: empty too.
 *
 * VARIANT=baseline|avx2|avx512f builds (SER_VARIANT_*) compile every kernel
 * for that one variant only, whatever the CPU would pick: `make check`
 * builds the first two beside the dispatching build, and
 * tests/t-kernel-variants.sh checks that all of them write the same bytes,
 * which is the promise above, tested on a CPU that would never run them.
 */
#ifndef SERTOOLS_CPU_H
#define SERTOOLS_CPU_H

#if defined(SER_VARIANT_BASELINE)
#define SER_KERNEL
#elif defined(SER_VARIANT_AVX2)
#define SER_KERNEL __attribute__((target("avx2")))
#elif defined(SER_VARIANT_AVX512F)
#define SER_KERNEL __attribute__((target("avx512f")))
#elif defined(__x86_64__) && !defined(SER_NATIVE) && (defined(__clang__) || defined(__GNUC__))
#define SER_KERNEL __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define SER_KERNEL
#endif

#define SER_VINLINE static inline __attribute__((always_inline))

/* The kernel variant the loader picks on this CPU: "avx512f", "avx2",
 * "x86-64" (baseline) or "native" (a NATIVE=1 build), for reports. */
static inline const char *ser_cpu_variant(void)
{
#if defined(SER_NATIVE)
	return "native";
#elif defined(SER_VARIANT_BASELINE)
	return "x86-64";
#elif defined(SER_VARIANT_AVX2)
	return "avx2";
#elif defined(SER_VARIANT_AVX512F)
	return "avx512f";
#elif defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return "avx512f";
	if (__builtin_cpu_supports("avx2"))
		return "avx2";
	return "x86-64";
#else
	return "generic";
#endif
}

#endif

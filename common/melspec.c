/* melspec.c - log-Mel spectrogram (see melspec.h for the definition). */
#include "cpu.h"
#include "melspec.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <fftw3.h>

/* Frames per GEMM: big enough for OpenBLAS to run near its peak, small
 * enough for the power block (BLOCK x n_freqs floats) to stay in L2
 * (64, 128 and 256 measured alike on Zen; 512 slower). */
#define BLOCK 128
/* What one more GEMM call costs, in multiply-adds per frame (measured
 * best of 256, 1024, 4096 on Zen; see plan_groups). */
#define GEMM_CALL_COST 1024.0

struct melspec {
	melspec_config cfg;
	int n_freqs;          /* n_fft / 2 + 1 */
	int pad;              /* reflect padding at each end */
	int win_lo;           /* the window's first sample within the frame */
	int bin_lo, bin_hi;   /* filterbank rows that are not all zero */
	int ngroups;          /* the projection: one GEMM per group of adjacent bands */
	struct band_group { int band_lo, band_hi, bin_lo, bin_hi; } *groups;
	int power_stride;     /* floats per row of the power block */
	int empty_bands;
	float db_mul, db_floor;
	double *window;       /* win_length samples */
	float *fb;            /* n_freqs x n_mels */
	double *frame_a, *frame_b; /* n_fft samples each: two frames, the real and
	                              the imaginary part of the FFT input */
	double *spec_re, *spec_im; /* its n_fft-point spectrum; frame_b and
	                              spec_im are the second halves of one block
	                              each (see plan_pair) */
	double *pair_power;        /* 2 x n_freqs: |A|^2, |B|^2 (power_rows) */
	float *power;         /* BLOCK x power_stride */
	fftw_plan plan;
	bool fixed_plan;      /* plan from split_512_wisdom, not FFTW_ESTIMATE */
};

melspec_config melspec_default_config(long sample_rate)
{
	return (melspec_config){
		.sample_rate = sample_rate, .n_fft = 512, .win_length = 512, .hop_length = 160, .n_mels = 64,
		.f_min = 50.0, .f_max = 8000.0, .power = 2.0, .db = true, .amin = 1e-10,
	};
}

int melspec_check(const melspec_config *c, char *err, size_t errlen)
{
	double nyquist = (double)(c->sample_rate / 2);
	if (c->sample_rate < 2)
		snprintf(err, errlen, "sample rate %ld Hz: must be at least 2", c->sample_rate);
	else if (c->n_fft < 2 || c->n_fft > MELSPEC_MAX_NFFT)
		snprintf(err, errlen, "n_fft %d: must be in 2..%d (formats/limits.md)", c->n_fft, MELSPEC_MAX_NFFT);
	else if (c->win_length < 2 || c->win_length > c->n_fft)
		snprintf(err, errlen, "window length %d: must be in 2..n_fft (%d)", c->win_length, c->n_fft);
	else if (c->hop_length < 1)
		snprintf(err, errlen, "hop length %d: must be at least 1", c->hop_length);
	else if (c->n_mels < 1 || c->n_mels > MELSPEC_MAX_MELS)
		snprintf(err, errlen, "%d mel bands: must be in 1..%d (formats/limits.md)", c->n_mels, MELSPEC_MAX_MELS);
	else if (!(c->f_min >= 0) || !(c->f_min < c->f_max))
		snprintf(err, errlen, "mel range %g..%g Hz: need 0 <= f_min < f_max", c->f_min, c->f_max);
	else if (c->f_max > nyquist)
		snprintf(err, errlen, "f_max %g Hz is above the Nyquist frequency %g Hz of sample rate %ld Hz", c->f_max,
		         nyquist, c->sample_rate);
	else if (!(c->power > 0) || !isfinite(c->power))
		snprintf(err, errlen, "power %g: must be positive", c->power);
	else if (c->db && !(c->amin >= FLT_MIN && c->amin < 1))
		snprintf(err, errlen, "amin %g: must be a normal float below 1", c->amin);
	else
		return 0;
	return -1;
}

/* Slaney's mel scale (Auditory Toolbox): linear below 1 kHz, 200/3 Hz per
 * mel; logarithmic above, 27 mels per factor 6.4. */
static double hz_to_mel(double hz)
{
	const double f_sp = 200.0 / 3, logstep = log(6.4) / 27.0;
	return hz < 1000.0 ? hz / f_sp : 1000.0 / f_sp + log(hz / 1000.0) / logstep;
}

static double mel_to_hz(double mel)
{
	const double f_sp = 200.0 / 3, logstep = log(6.4) / 27.0, min_log_mel = 1000.0 / f_sp;
	return mel < min_log_mel ? mel * f_sp : 1000.0 * exp(logstep * (mel - min_log_mel));
}

/* The filterbank is banded: one dense GEMM over all bins and bands spends
 * ~97% of its multiplications on zeros (and was 40% of the run time).  So
 * the bands are split into runs of adjacent bands, each one GEMM over its
 * own range of bins; the split minimises multiplications plus a per-call
 * cost (dynamic programming over the split points).  The products skipped
 * are exact zeros. */
static int plan_groups(melspec *m)
{
	const int max_group = 64; /* bounds the search; wider groups never pay */
	int nm = m->cfg.n_mels, nf = m->n_freqs;
	double *best = malloc((size_t)(nm + 1) * sizeof *best);
	int *from = malloc((size_t)(nm + 1) * sizeof *from);
	int *lo = malloc((size_t)nm * sizeof *lo), *hi = malloc((size_t)nm * sizeof *hi);
	m->groups = malloc((size_t)nm * sizeof *m->groups);
	int rc = -1;
	if (!best || !from || !lo || !hi || !m->groups)
		goto out;
	for (int b = 0; b < nm; b++) {
		lo[b] = nf;
		hi[b] = 0;
		for (int k = 0; k < nf; k++)
			if (m->fb[(size_t)k * nm + b] > 0) {
				lo[b] = k < lo[b] ? k : lo[b];
				hi[b] = k + 1;
			}
	}
	best[0] = 0;
	for (int e = 1; e <= nm; e++) {
		int l = nf, h = 0;
		best[e] = INFINITY;
		for (int s = e - 1; s >= 0 && s >= e - max_group; s--) {
			l = lo[s] < l ? lo[s] : l;
			h = hi[s] > h ? hi[s] : h;
			double cost = best[s] + GEMM_CALL_COST + (h > l ? (double)(h - l) * (e - s) : 0);
			if (cost < best[e]) {
				best[e] = cost;
				from[e] = s;
			}
		}
	}
	int n = 0;
	for (int e = nm; e > 0; e = from[e])
		n++;
	m->ngroups = n;
	for (int e = nm; e > 0; e = from[e]) {
		struct band_group *g = &m->groups[--n];
		g->band_lo = from[e];
		g->band_hi = e;
		g->bin_lo = nf;
		g->bin_hi = 0;
		for (int b = g->band_lo; b < e; b++) {
			g->bin_lo = lo[b] < g->bin_lo ? lo[b] : g->bin_lo;
			g->bin_hi = hi[b] > g->bin_hi ? hi[b] : g->bin_hi;
		}
		if (g->bin_hi <= g->bin_lo)
			g->bin_lo = g->bin_hi = 0;
	}
	rc = 0;
out:
	free(best);
	free(from);
	free(lo);
	free(hi);
	return rc;
}

/* torchaudio's melscale_fbanks with norm and mel_scale 'slaney', in double.
 * Bin k sits at k * floor(sr / 2) / (n_freqs - 1) Hz as torchaudio places it
 * (exactly k * sr / n_fft for an even n_fft and an even sample rate). */
static int make_filterbank(melspec *m)
{
	const melspec_config *c = &m->cfg;
	int nm = c->n_mels, nf = m->n_freqs;
	double *f_pts = malloc((size_t)(nm + 2) * sizeof *f_pts);
	if (!f_pts)
		return -1;
	double m_lo = hz_to_mel(c->f_min), m_hi = hz_to_mel(c->f_max);
	for (int i = 0; i < nm + 2; i++)
		f_pts[i] = mel_to_hz(m_lo + (m_hi - m_lo) * i / (nm + 1));
	double top = (double)(c->sample_rate / 2);
	m->bin_lo = nf;
	m->bin_hi = 0;
	for (int k = 0; k < nf; k++) {
		double f = top * k / (nf - 1);
		for (int b = 0; b < nm; b++) {
			double down = (f - f_pts[b]) / (f_pts[b + 1] - f_pts[b]);
			double up = (f_pts[b + 2] - f) / (f_pts[b + 2] - f_pts[b + 1]);
			double w = fmax(0.0, fmin(down, up)) * 2.0 / (f_pts[b + 2] - f_pts[b]);
			m->fb[(size_t)k * nm + b] = (float)w;
			if (w > 0) {
				if (k < m->bin_lo)
					m->bin_lo = k;
				m->bin_hi = k + 1;
			}
		}
	}
	m->empty_bands = 0;
	for (int b = 0; b < nm; b++) {
		bool any = false;
		for (int k = 0; k < nf && !any; k++)
			any = m->fb[(size_t)k * nm + b] > 0;
		m->empty_bands += !any;
	}
	free(f_pts);
	return plan_groups(m);
}

/* The plan of the 512-point complex transform (the Cnn14 front end, two
 * frames at a time, split real and imaginary arrays), as FFTW 3.3.10's
 * MEASURE found it on Zen 4 in most runs: radix 32 over 16 in AVX
 * codelets, 0.52-0.56 us a pair against 0.40 us a frame for the best r2c
 * plan of one frame (2026-12-07).  MEASURE times candidates in every run,
 * and each plan has its own output bits; this wisdom is a fixed choice, the
 * same plan in every run on every CPU with AVX.  FFTW's wisdom keys a split
 * problem by the distance from the real to the imaginary array, hence one
 * block per pair, the imaginary half at the fixed offset pair_stride().
 * Another FFTW version, a CPU without AVX or another n_fft gets
 * ESTIMATE's plan (also the same in every run on that machine). */
static const char split_512_wisdom[] =
	"(fftw-3.3.10 fftw_wisdom #x458a31c8 #x92381c4c #x4f974889 #xcd46f97e\n"
	"  (fftw_codelet_t1sv_32_avx 0 #x11bdd #x11bdd #x0 #xb70afcdf #x8cd25fd7 #xb2a53517 #x7a93024f)\n"
	"  (fftw_codelet_n2sv_16_avx 0 #x11bdd #x11bdd #x0 #x3ef95d42 #x6b90b535 #x2394ce16 #x3561bf13)\n"
	")\n";

/* Doubles from a pair's real array to its imaginary one: n_fft rounded up
 * to a 64-byte multiple, so that both halves are aligned for SIMD. */
static size_t pair_stride(int n_fft)
{
	return ((size_t)n_fft + 7) & ~(size_t)7;
}

static fftw_plan plan_pair(melspec *m)
{
	fftw_iodim dim = {.n = m->cfg.n_fft, .is = 1, .os = 1};
	m->fixed_plan = false;
	if (dim.n == 512 && fftw_import_wisdom_from_string(split_512_wisdom)) {
		fftw_plan p = fftw_plan_guru_split_dft(1, &dim, 0, NULL, m->frame_a, m->frame_b, m->spec_re, m->spec_im,
		                                       FFTW_MEASURE | FFTW_WISDOM_ONLY);
		if (p) {
			m->fixed_plan = true;
			return p;
		}
	}
	return fftw_plan_guru_split_dft(1, &dim, 0, NULL, m->frame_a, m->frame_b, m->spec_re, m->spec_im,
	                                FFTW_ESTIMATE);
}

melspec *melspec_new(const melspec_config *cfg, char *err, size_t errlen)
{
	if (melspec_check(cfg, err, errlen))
		return NULL;
	melspec *m = calloc(1, sizeof *m);
	if (!m)
		goto nomem;
	m->cfg = *cfg;
	const melspec_config *c = &m->cfg;
	m->n_freqs = c->n_fft / 2 + 1;
	m->pad = c->n_fft / 2;
	m->win_lo = (c->n_fft - c->win_length) / 2;
	m->power_stride = (m->n_freqs + 15) & ~15;
	m->db_mul = (float)(20.0 / c->power);
	m->db_floor = (float)(20.0 / c->power * log10((double)(float)c->amin));
	m->window = fftw_malloc((size_t)c->win_length * sizeof *m->window);
	m->fb = fftwf_malloc((size_t)m->n_freqs * (size_t)c->n_mels * sizeof *m->fb);
	size_t stride = pair_stride(c->n_fft);
	m->frame_a = fftw_malloc(2 * stride * sizeof(double));
	m->spec_re = fftw_malloc(2 * stride * sizeof(double));
	m->pair_power = fftw_malloc(2 * (size_t)m->n_freqs * sizeof *m->pair_power);
	m->power = fftwf_malloc((size_t)BLOCK * (size_t)m->power_stride * sizeof *m->power);
	if (!m->window || !m->fb || !m->frame_a || !m->spec_re || !m->pair_power || !m->power || make_filterbank(m))
		goto nomem;
	m->frame_b = m->frame_a + stride;
	m->spec_im = m->spec_re + stride;
	/* periodic Hann: the symmetric window of win_length + 1 without its last sample */
	for (int i = 0; i < c->win_length; i++)
		m->window[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / c->win_length);
	m->plan = plan_pair(m);
	if (!m->plan)
		goto nomem;
	/* after planning, which may write the arrays */
	memset(m->frame_a, 0, 2 * stride * sizeof *m->frame_a); /* and frame_b */
	memset(m->power, 0, (size_t)BLOCK * (size_t)m->power_stride * sizeof *m->power);
	return m;
nomem:
	snprintf(err, errlen, "out of memory (FFT size %d, %d mel bands)", cfg->n_fft, cfg->n_mels);
	melspec_free(m);
	return NULL;
}

void melspec_free(melspec *m)
{
	if (!m)
		return;
	if (m->plan)
		fftw_destroy_plan(m->plan);
	fftw_free(m->window);
	fftwf_free(m->fb);
	fftw_free(m->frame_a); /* and frame_b */
	fftw_free(m->spec_re); /* and spec_im */
	fftw_free(m->pair_power);
	fftwf_free(m->power);
	free(m->groups);
	free(m);
}

const char *melspec_fft_plan(const melspec *m)
{
	return m->fixed_plan ? "fixed" : "estimate";
}

const melspec_config *melspec_get_config(const melspec *m) { return &m->cfg; }
size_t melspec_min_samples(const melspec *m) { return (size_t)m->pad + 1; }
const float *melspec_filterbank(const melspec *m) { return m->fb; }
int melspec_empty_bands(const melspec *m) { return m->empty_bands; }

size_t melspec_frames(const melspec *m, size_t n)
{
	return 1 + (n + 2 * (size_t)m->pad - (size_t)m->cfg.n_fft) / (size_t)m->cfg.hop_length;
}

/* Index into the signal of sample j of the reflect-padded signal (j may
 * be negative); valid for n > pad. */
static size_t reflect(ptrdiff_t j, size_t n)
{
	if (j < 0)
		return (size_t)-j;
	if ((size_t)j >= n)
		return 2 * (n - 1) - (size_t)j;
	return (size_t)j;
}

/* Windows frame t into dst (n_fft samples; the zeros outside the window
 * were set once). */
SER_KERNEL static void fill_frame(const melspec *m, const float *x, size_t n, size_t t, double *restrict dst)
{
	int wl = m->cfg.win_length;
	ptrdiff_t first = (ptrdiff_t)(t * (size_t)m->cfg.hop_length) - m->pad + m->win_lo;
	const double *restrict w = m->window;
	dst += m->win_lo;
	if (first >= 0 && (size_t)first + (size_t)wl <= n) {
		const float *restrict src = x + first;
		for (int i = 0; i < wl; i++)
			dst[i] = (double)src[i] * w[i];
	} else {
		for (int i = 0; i < wl; i++)
			dst[i] = (double)x[reflect(first + i, n)] * w[i];
	}
}

/* |A[k]|^2 and |B[k]|^2, k in [lo, hi), 0 < lo, of the two frames a, b
 * (the real and imaginary parts of the FFT input) from the spectrum Z =
 * re + i im of a + ib: with W[k] = conj(Z[n - k]), A = (Z + W) / 2 and
 * B = (Z - W) / 2i.  Split arrays keep the mirrored reads unit-stride; the
 * pointers are parameters so that GCC trusts their restrict and vectorises
 * without an aliasing check. */
SER_KERNEL static void split_pair_power(const double *restrict re, const double *restrict im, double *restrict pa,
                                        double *restrict pb, int lo, int hi, int n)
{
	for (int k = lo; k < hi; k++) {
		double sum_re = re[k] + re[n - k], dif_im = im[k] - im[n - k];
		double sum_im = im[k] + im[n - k], dif_re = re[k] - re[n - k];
		pa[k] = 0.25 * (sum_re * sum_re + dif_im * dif_im);
		pb[k] = 0.25 * (sum_im * sum_im + dif_re * dif_re);
	}
}

/* The power spectra of the frame pair (split_pair_power), bins [lo, hi)
 * into row_a and row_b, raised to power / 2.  The rounding to float is a
 * loop of its own: GCC 12 vectorises no loop that has both a reversed read
 * and a double-to-float store. */
SER_KERNEL static void power_rows(const melspec *m, float *restrict row_a, float *restrict row_b)
{
	int lo = m->bin_lo, hi = m->bin_hi;
	const double *re = m->spec_re, *im = m->spec_im;
	double *restrict pa = m->pair_power, *restrict pb = m->pair_power + m->n_freqs;
	if (lo == 0) { /* W[0] = conj(Z[0]) */
		pa[0] = re[0] * re[0];
		pb[0] = im[0] * im[0];
	}
	split_pair_power(re, im, pa, pb, lo > 0 ? lo : 1, hi, m->cfg.n_fft);
	for (int k = lo; k < hi; k++) {
		row_a[k] = (float)pa[k];
		row_b[k] = (float)pb[k];
	}
	if (m->cfg.power == 2.0)
		return;
	for (int r = 0; r < 2; r++) {
		float *restrict row = r ? row_b : row_a;
		if (m->cfg.power == 1.0) {
			for (int k = lo; k < hi; k++)
				row[k] = sqrtf(row[k]);
		} else {
			float half = (float)(m->cfg.power / 2);
			for (int k = lo; k < hi; k++)
				row[k] = powf(row[k], half);
		}
	}
}

/* mul * log10(max(x, amin)) in place.  The natural log comes from the
 * exponent and a series in t = (r - 1) / (r + 1) for the mantissa r in
 * [sqrt(1/2), sqrt(2)), |t| <= 0.172: five terms leave an error below
 * 1e-9, under float rounding.  Values at or below amin get exactly
 * floor_db = mul * log10(amin), as torchaudio gives them.  The selections
 * are bit masks, not branches, so that GCC vectorises the loop without
 * -ffast-math. */
SER_KERNEL static void to_db(float *restrict x, size_t n, float amin, float mul, float floor_db)
{
	const float k = mul * (float)(1.0 / M_LN10), ln2 = (float)M_LN2;
	uint32_t amin_bits, floor_bits;
	memcpy(&amin_bits, &amin, sizeof amin_bits);
	memcpy(&floor_bits, &floor_db, sizeof floor_bits);
	for (size_t i = 0; i < n; i++) {
		uint32_t xb, yb, mb;
		memcpy(&xb, &x[i], sizeof xb);
		uint32_t keep = -(uint32_t)(x[i] > amin);
		uint32_t off = ((xb & keep) | (amin_bits & ~keep)) - 0x3f3504f3u; /* bits of sqrt(1/2) */
		int32_t e = (int32_t)off >> 23;
		mb = (off & 0x007fffffu) + 0x3f3504f3u;
		float r;
		memcpy(&r, &mb, sizeof r);
		float t = (r - 1.0f) / (r + 1.0f), t2 = t * t;
		float s = 1.0f + t2 * (1.0f / 3 + t2 * (1.0f / 5 + t2 * (1.0f / 7 + t2 * (1.0f / 9))));
		float y = k * ((float)e * ln2 + 2.0f * t * s);
		memcpy(&yb, &y, sizeof yb);
		yb = (yb & keep) | (floor_bits & ~keep);
		memcpy(&x[i], &yb, sizeof yb);
	}
}

int melspec_compute(melspec *m, const float *x, size_t n, float *out)
{
	if (n < melspec_min_samples(m))
		return -1;
	const melspec_config *c = &m->cfg;
	size_t frames = melspec_frames(m, n), nm = (size_t)c->n_mels;
	int nb = m->bin_hi - m->bin_lo;
	for (size_t t0 = 0; t0 < frames; t0 += BLOCK) {
		size_t rows = frames - t0 < BLOCK ? frames - t0 : BLOCK;
		float *dst = out + t0 * nm;
		if (nb <= 0) {
			memset(dst, 0, rows * nm * sizeof *dst);
		} else {
			/* two frames per transform.  An odd last frame is paired
			 * with zeros (not a stale frame: its bits would then depend
			 * on another item); the power block has an even row count
			 * (BLOCK), room for the spare row, which is never read. */
			for (size_t i = 0; i < rows; i += 2) {
				fill_frame(m, x, n, t0 + i, m->frame_a);
				if (i + 1 < rows)
					fill_frame(m, x, n, t0 + i + 1, m->frame_b);
				else
					memset(m->frame_b, 0, (size_t)c->n_fft * sizeof *m->frame_b);
				fftw_execute(m->plan);
				float *row = m->power + i * (size_t)m->power_stride;
				power_rows(m, row, row + m->power_stride);
			}
			for (int g = 0; g < m->ngroups; g++) {
				const struct band_group *gr = &m->groups[g];
				int bands = gr->band_hi - gr->band_lo, bins = gr->bin_hi - gr->bin_lo;
				if (bins == 0) {
					for (size_t i = 0; i < rows; i++)
						memset(dst + i * nm + gr->band_lo, 0, (size_t)bands * sizeof *dst);
					continue;
				}
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, bands, bins, 1.0f,
				            m->power + gr->bin_lo, m->power_stride,
				            m->fb + (size_t)gr->bin_lo * nm + gr->band_lo, (int)nm, 0.0f,
				            dst + gr->band_lo, (int)nm);
			}
		}
		if (c->db)
			to_db(dst, rows * nm, (float)c->amin, m->db_mul, m->db_floor);
	}
	return 0;
}

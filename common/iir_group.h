/*
 * iir_group.h - the loops over one group of four sections, for one pair of
 * sample types; included by iir.c once per type (as SoX's dither.h is),
 * after these are defined:
 *   IIR_TIN, IIR_TOUT                      input and output sample types
 *   IIR_GROUP_SCALAR, IIR_GROUP_PIPELINE   the names of the two functions
 * and undefines them at its end.  No include guard, on purpose.
 */

/* Group g (sections 4g .. 4g+3), sample after sample: for pieces too short
 * for the pipeline. */
SER_KERNEL static void IIR_GROUP_SCALAR(iir_sos *f, int g, const IIR_TIN *in, IIR_TOUT *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double v = in[i];
		for (int s = 4 * g; s < 4 * g + 4; s++) {
			double *z = f->z + 2 * s;
			double y = f->b0[s] * v + z[0];
			z[0] = (f->b1[s] * v - f->a1[s] * y) + z[1];
			z[1] = f->b2[s] * v - f->a2[s] * y;
			v = y;
		}
		out[i] = (IIR_TOUT)v;
	}
}

/* Group g through the skewed pipeline (iir.c explains it).  n >= 2 SKEW. */
SER_KERNEL static void IIR_GROUP_PIPELINE(iir_sos *f, int g, const IIR_TIN *in, IIR_TOUT *out, size_t n)
{
	const int s0 = 4 * g;
	double *zs = f->z + 2 * s0;
	/* prologue: lane j starts at sample SKEW - LAG j */
	double head[SKEW];
	for (int i = 0; i < SKEW; i++)
		head[i] = in[i];
	section_run(f, s0, head, SKEW);
	section_run(f, s0 + 1, head, 2 * LAG);
	section_run(f, s0 + 2, head, LAG);
	v4d ring[LAG];
	for (int j = 0; j < LAG; j++)
		ring[j] = (v4d){head[2 * LAG + j], head[LAG + j], head[j], 0};
	v4d b0, k1, k2, na1, na2, z0, z1;
	memcpy(&b0, f->b0 + s0, sizeof b0);
	memcpy(&k1, f->k1 + s0, sizeof k1);
	memcpy(&k2, f->k2 + s0, sizeof k2);
	memcpy(&na1, f->a1 + s0, sizeof na1);
	memcpy(&na2, f->a2 + s0, sizeof na2);
	na1 = -na1;
	na2 = -na2;
	z0 = (v4d){zs[0], zs[2], zs[4], zs[6]};
	z1 = (v4d){zs[1], zs[3], zs[5], zs[7]};
	size_t end = SKEW + (n - SKEW) / LAG * LAG;
	for (size_t t = SKEW; t < end; t += LAG) {
		for (int j = 0; j < LAG; j++) {
			v4d x = SHIFT_UP(ring[j]);
			x[0] = in[t + j];
			v4d y = b0 * x + z0;
			v4d nz0 = na1 * z0 + (k1 * x + z1);
			z1 = na2 * z0 + k2 * x;
			z0 = nz0;
			ring[j] = y;
			out[t + j - SKEW] = (IIR_TOUT)y[3];
		}
	}
	for (int j = 0; j < 4; j++) {
		zs[2 * j] = z0[j];
		zs[2 * j + 1] = z1[j];
	}
	/* epilogue: bring lanes 1..3 up to sample end */
	double tail[SKEW];
	for (int j = 0; j < LAG; j++) {
		tail[2 * LAG + j] = ring[j][0];
		tail[LAG + j] = ring[j][1];
		tail[j] = ring[j][2];
	}
	section_run(f, s0 + 1, tail + 2 * LAG, LAG);
	section_run(f, s0 + 2, tail + LAG, 2 * LAG);
	section_run(f, s0 + 3, tail, SKEW);
	for (int i = 0; i < SKEW; i++)
		out[end - SKEW + i] = (IIR_TOUT)tail[i];
	IIR_GROUP_SCALAR(f, g, in + end, out + end, n - end);
}

#undef IIR_TIN
#undef IIR_TOUT
#undef IIR_GROUP_SCALAR
#undef IIR_GROUP_PIPELINE

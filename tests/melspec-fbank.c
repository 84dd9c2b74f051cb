/* Test helper: writes melspec's filterbank, float32 row-major
 * (n_fft/2 + 1, n_mels), to stdout for comparison with torchaudio's
 * melscale_fbanks.  Usage: melspec-fbank RATE NFFT NMELS FMIN FMAX */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "melspec.h"

int main(int argc, char **argv)
{
	long rate, nfft, nmels;
	double fmin, fmax;
	if (argc != 6 || !cli_parse_long(argv[1], 2, 1000000000, &rate) || !cli_parse_long(argv[2], 2, 1 << 24, &nfft) ||
	    !cli_parse_long(argv[3], 1, 65536, &nmels) || !cli_parse_double(argv[4], 0, 1e9, &fmin) ||
	    !cli_parse_double(argv[5], 0, 1e9, &fmax)) {
		fputs("usage: melspec-fbank RATE NFFT NMELS FMIN FMAX\n", stderr);
		return 1;
	}
	melspec_config cfg = melspec_default_config(rate);
	cfg.n_fft = cfg.win_length = (int)nfft;
	cfg.n_mels = (int)nmels;
	cfg.f_min = fmin;
	cfg.f_max = fmax;
	char err[256];
	melspec *m = melspec_new(&cfg, err, sizeof err);
	if (!m)
		cli_die("melspec-fbank", 2, "%s", err);
	size_t n = (size_t)(nfft / 2 + 1) * (size_t)nmels;
	if (fwrite(melspec_filterbank(m), sizeof(float), n, stdout) != n)
		cli_die("melspec-fbank", 2, "stdout: write failed");
	melspec_free(m);
	cli_close_stdout("melspec-fbank");
	return 0;
}

/*
 * feature_params.h - do two streams' features come from the same front end?
 *
 * A feature stream's header carries params.melspec (melspec's settings,
 * formats/stream.md) and, after band-pass filtering, params.bandpass.  A
 * model trained on one front end scores another's features without any
 * error but with meaningless results, so the programs that bring a model
 * and a stream together compare these maps and name every setting that
 * differs, e.g.
 *     n_fft 1024 in the stream, 512 in the checkpoint; power 1.0 in ...
 */
#ifndef SERTOOLS_FEATURE_PARAMS_H
#define SERTOOLS_FEATURE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "value.h"

/* True when a and b are equal maps (or either is absent: nothing to
 * compare).  Otherwise false, and msg (len bytes, cut short if longer)
 * lists each differing key as "KEY A in the A_NAME, B in the B_NAME",
 * separated by "; ", with absent values written "(absent)" (a side that is
 * not a map has no keys; when neither is: "they are not both maps"). */
bool feature_params_match(const sv *a, const sv *b, const char *a_name, const char *b_name, char *msg,
                          size_t len);

#endif

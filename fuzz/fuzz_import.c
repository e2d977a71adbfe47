/*
 * fuzz_import.c - the import readers (cli/import.h) on arbitrary bytes.
 *
 * The first byte chooses the format (low 3 bits, modulo 5) and the CSV
 * header and id-column modes (bits 3-4 and 5-6: auto, no, yes); bit 7 asks
 * for a collection dimension of 2, so the dimension checks run too. The
 * rest is the file. Every row handed out is touched so that the sanitizers
 * see any pointer into freed or unfilled memory.
 *
 * Low bits 7 instead feed the rest, as text, to the query-vector parser of
 * `ruvector search --vector` (cli/output.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "import.h"

static const rv_import_format formats[] = { RV_IMPORT_FVECS, RV_IMPORT_BVECS, RV_IMPORT_NPY,
					    RV_IMPORT_CSV, RV_IMPORT_JSONL };
static const int modes[] = { RV_CSV_AUTO, RV_CSV_NO, RV_CSV_YES, RV_CSV_AUTO };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if ((data[0] & 7) == 7) {
		char *text = rv_strndup(NULL, (const char *)data + 1, size - 1);
		float *v = NULL;
		size_t n = 0;
		rv_err err = { "" };
		if (text && rv_parse_vector(text, &v, &n, &err) == RV_OK && (n == 0 || n > RV_MAX_DIM))
			__builtin_trap();
		rv_dealloc(NULL, v);
		rv_dealloc(NULL, text);
		return 0;
	}
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	o.format = formats[(data[0] & 7) % 5];
	o.csv_header = modes[(data[0] >> 3) & 3];
	o.csv_id_column = modes[(data[0] >> 5) & 3];
	o.dim = data[0] & 0x80 ? 2 : 0;
	rv_import *r;
	rv_err err = { "" };
	if (rv_import_open_mem(&r, data + 1, size - 1, &o, &err) != RV_OK) {
		/* A failure always says why. */
		if (!err.msg[0])
			__builtin_trap();
		return 0;
	}
	rv_import_batch b;
	rv_import_batch_init(&b, 7, NULL);
	volatile float sink = 0;
	rv_status st;
	while ((st = rv_import_next(r, &b, &err)) == RV_OK && b.n > 0) {
		for (size_t i = 0; i < b.n; i++) {
			size_t n = strlen(b.points[i].id);
			if (n == 0 || n > RV_MAX_ID_LEN)
				__builtin_trap();
			if (b.points[i].payload)
				sink += (float)strlen(b.points[i].payload);
			for (uint32_t d = 0; d < b.dim; d++)
				sink += b.points[i].vector[d];
		}
	}
	if (st != RV_OK && !err.msg[0])
		__builtin_trap();
	(void)sink;
	rv_import_batch_free(&b);
	rv_import_close(r);
	return 0;
}

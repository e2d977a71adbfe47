/*
 * fuzz_quant.c - the quantizers' parameter parsers (rv_sq8_from_bytes,
 * rv_bq_from_bytes, rv_pq_from_bytes) on arbitrary bytes.
 *
 * Input: one selector byte (quantizer = byte % 3), then the blob without
 * its 8-byte checksum; the target appends the right checksum so the fuzzer
 * reaches the field checks behind it instead of dying at the hash. A blob
 * that loads must save back to the same bytes and encode a vector.
 */
#include <stdlib.h>

#include "quant/quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 20))
		return 0;
	int which = data[0] % 3;
	size_t n = size - 1 + 8;
	uint8_t *blob = malloc(n);
	if (!blob)
		return 0;
	memcpy(blob, data + 1, size - 1);
	rv_put_u64(blob + size - 1, rv_hash64(blob, size - 1, 0));
	void *q = NULL;
	rv_err e;
	rv_status st = which == 0 ? rv_sq8_from_bytes((rv_sq8 **)&q, blob, n, NULL, &e)
		     : which == 1 ? rv_bq_from_bytes((rv_bq **)&q, blob, n, NULL, &e)
				  : rv_pq_from_bytes((rv_pq **)&q, blob, n, NULL, &e);
	if (st != RV_OK) {
		if (q || (st != RV_ECORRUPT && st != RV_ENOMEM))
			abort();
		free(blob);
		return 0;
	}
	rv_buf b;
	rv_buf_init(&b, NULL);
	size_t dim = which == 0 ? rv_sq8_dim(q) : which == 1 ? rv_bq_dim(q) : rv_pq_dim(q);
	float *x = calloc(dim, sizeof(float));
	uint8_t *code = malloc(dim + 8);
	if (which == 0) {
		rv_sq8_to_bytes(&b, q);
		rv_sq8_encode(q, x, code);
		rv_sq8_decode(q, code, x);
		rv_sq8_free(q);
	} else if (which == 1) {
		rv_bq_to_bytes(&b, q);
		rv_bq_encode(q, x, code);
		rv_bq_free(q);
	} else {
		rv_pq_to_bytes(&b, q);
		rv_pq_encode(q, x, code);
		rv_pq_decode(q, code, x);
		rv_pq_free(q);
	}
	if (b.failed || b.len != n || memcmp(b.data, blob, n) != 0)
		abort();
	rv_buf_free(&b);
	free(x);
	free(code);
	free(blob);
	return 0;
}

/*
 * fuzz_quant_seg.c - the decoder of QUANT segment payloads (rv_qseg_parse,
 * rv_qseg_load) on arbitrary bytes: the trained quantizer of a collection
 * (kind 1) and runs of stored codes (kind 2), as open and verify read them
 * from a file.
 *
 * The quantizer's parameters carry their own checksum; when the input
 * frames parameters, the target rewrites that checksum so the fuzzer gets
 * past it to the field checks. Invariants: parsing and loading fail only
 * with RV_ECORRUPT (or RV_ENOMEM) and leave nothing allocated; a payload
 * that loads is written back byte for byte the same by
 * rv_qseg_put_quantizer, and its quantizer encodes a vector with codes of
 * the size the header states; a codes payload spans exactly its count.
 */
#include <stdlib.h>

#include "quant/quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	/* Parameters framed by a kind-1 header: give them a good checksum. */
	if (size >= RV_QSEG_QUANTIZER_HEADER + 8 && rv_get_u32(p) == RV_QSEG_QUANTIZER &&
	    rv_get_u64(p + 24) == size - RV_QSEG_QUANTIZER_HEADER) {
		size_t plen = size - RV_QSEG_QUANTIZER_HEADER;
		uint8_t *params = p + RV_QSEG_QUANTIZER_HEADER;
		rv_put_u64(params + plen - 8, rv_hash64(params, plen - 8, 0));
	}
	rv_err e;
	rv_qseg q;
	rv_status st = rv_qseg_parse(&q, p, size, &e);
	if (st != RV_OK) {
		if (st != RV_ECORRUPT)
			abort();
		goto done;
	}
	if (q.kind == RV_QSEG_CODES) {
		/* Every code byte lies inside the payload. */
		if (q.codes != p + RV_QSEG_CODES_HEADER || (uint64_t)q.count * q.code_bytes != size - RV_QSEG_CODES_HEADER)
			abort();
		unsigned sum = 0;
		for (size_t i = 0; i < (size_t)q.count * q.code_bytes; i++)
			sum += q.codes[i];
		(void)sum;
		goto done;
	}
	if (q.kind != RV_QSEG_QUANTIZER || q.params + q.params_len != p + size)
		abort();
	rv_quantizer qz;
	st = rv_qseg_load(&qz, &q, NULL, &e);
	if (st != RV_OK) {
		if ((st != RV_ECORRUPT && st != RV_ENOMEM) || qz.kind != RV_QUANT_NONE)
			abort();
		goto done;
	}
	if (qz.kind != q.quant || rv_quantizer_dim(&qz) != q.dim || rv_quantizer_code_size(&qz) != q.code_bytes)
		abort();
	rv_buf b;
	rv_buf_init(&b, NULL);
	rv_qseg_put_quantizer(&b, &qz, q.sample);
	if (b.failed || b.len != size || memcmp(b.data, p, size) != 0)
		abort();
	rv_buf_free(&b);
	float *x = calloc(q.dim, sizeof(float));
	uint8_t *code = malloc(q.code_bytes);
	if (x && code) {
		for (uint32_t d = 0; d < q.dim; d++)
			x[d] = (float)d - (float)q.dim / 2;
		rv_quantizer_encode(&qz, x, code);
	}
	free(x);
	free(code);
	rv_quantizer_free(&qz);
done:
	free(p);
	return 0;
}

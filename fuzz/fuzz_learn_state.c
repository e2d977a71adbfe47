/*
 * fuzz_learn_state.c - the learning core's byte-form loaders
 * (rv_lora_load, rv_rbank_load, rv_gnn_load) on arbitrary bytes.
 *
 * Input: one selector byte (loader = byte % 3), then the blob without its
 * 8-byte checksum; the target appends the right checksum so the fuzzer
 * reaches the field checks behind it. A blob that loads must save back to
 * the same bytes and survive use (apply/step, assign, score).
 */
#include <stdlib.h>

#include "learn/learn.h"

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
	rv_err e;
	rv_buf out;
	rv_buf_init(&out, NULL);
	float *v = NULL;
	if (which == 0) {
		rv_lora *l = NULL;
		if (rv_lora_load(&l, blob, n, NULL, &e) == RV_OK) {
			if (rv_lora_save(&out, l) != RV_OK || out.len != n || memcmp(out.data, blob, n) != 0)
				abort();
			size_t d = rv_lora_get_opts(l)->dim;
			v = calloc(3 * d, sizeof(float));
			for (size_t i = 0; i < 3 * d; i++)
				v[i] = (float)((i * 7) % 5) - 2.0f;
			rv_lora_event ev = { v, v + d, v + 2 * d, NULL, 1.0f };
			rv_lora_step(NULL, l, &ev);
			rv_lora_apply(v, l, v);
		}
		rv_lora_free(l);
	} else if (which == 1) {
		rv_rbank *b = NULL;
		if (rv_rbank_load(&b, blob, n, NULL, &e) == RV_OK) {
			if (rv_rbank_save(&out, b) != RV_OK || out.len != n || memcmp(out.data, blob, n) != 0)
				abort();
			uint32_t c;
			size_t d = rv_rbank_centroids(b) ? 1 : 0;
			(void)d;
			v = calloc(RV_LEARN_MAX_DIM, sizeof(float));
			if (rv_rbank_fitted(b)) {
				if (rv_rbank_assign(&c, NULL, b, v) != RV_OK || c >= rv_rbank_k(b))
					abort();
				rv_rbank_record(b, c, 1.0f);
				rv_rbank_best_learner(b, c, 1);
			}
		}
		rv_rbank_free(b);
	} else {
		rv_gnn *m = NULL;
		if (rv_gnn_load(&m, blob, n, NULL, &e) == RV_OK) {
			if (rv_gnn_save(&out, m) != RV_OK || out.len != n || memcmp(out.data, blob, n) != 0)
				abort();
			size_t d = rv_gnn_get_opts(m)->in_dim;
			if (d <= 64) {
				/* Three nodes in a path, two candidates. */
				v = calloc(3 * d + d, sizeof(float));
				for (size_t i = 0; i < 4 * d; i++)
					v[i] = (float)((i * 3) % 7) / 7.0f - 0.5f;
				uint32_t off[4] = { 0, 1, 3, 4 }, nb[4] = { 1, 0, 2, 1 }, items[3] = { 0, 5, RV_GNN_NO_ITEM };
				rv_gnn_graph g = { 3, 2, v, off, nb, items, NULL };
				float s[2];
				rv_gnn_pair p = { 0, 1, 1.0f };
				rv_gnn_score(s, m, &g, v + 3 * d);
				rv_gnn_step(NULL, m, &g, v + 3 * d, &p, 1);
			}
		}
		rv_gnn_free(m);
	}
	free(v);
	rv_buf_free(&out);
	free(blob);
	return 0;
}

/*
 * db_rerank_cat.c - the re-ranker's category term (db_rerank_cat.h has
 * the model and why).
 *
 * Gradients. In the term's pair model a candidate scores
 * s_v = beta base_v + cat_v (sigma at scale 1); with ds_v = dL/ds_v from
 * the pair loss sum w softplus(-(s_c - s_s)),
 *   dL/dsigma    = sum_v ds_v p(c_v)
 *   dL/dM[a][b]  = p(a) sum_{v: c_v = b} ds_v
 *   dL/dbeta     = sum_v ds_v base_v
 * All step by plain SGD, like the re-ranker's item priors: Adam moves a
 * weight a full step per sample whatever the evidence, and from random
 * clicks (no preference, so a gradient of mean 0) it drove sigma to 0.5
 * in tests/test_rerank_cat.c's world where SGD leaves 0.05, with the
 * same gain from real clicks. Each is regularised where it is
 * used, towards 0 (l2) or, with EWC++, towards its anchor by
 * (l2 + lambda F); for M that part of the step is implicit (proximal),
 * as a large Fisher estimate times the step size would make an explicit
 * one diverge (it did, on the Debian set).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db_rerank_cat.h"
#include "learn/learn.h"
#include "ruvector_learn.h"

/* Step sizes and decay (SGD), measured in tests/test_rerank_cat.c's world:
 * sigma's step 0.05 learns the wanted category (+23% held-out NDCG@10)
 * and stays near 0 under random clicks (0.05); at 0.2 and 1.0 the random
 * walk under random clicks reached -2 and -10 (-16% and -49% NDCG). */
#define RCAT_SIGMA_LR 0.05f
#define RCAT_M_LR 0.05f
#define RCAT_L2 1e-2f
#define RCAT_BETA_LR 0.01f
#define RCAT_Z 3.0          /* sigma's z that lets it be served over beta */
#define RCAT_BETA_MIN 0.1f  /* ... at most 1 / RCAT_BETA_MIN times */
#define RCAT_NAME_MAX 256        /* longer values name no category */
#define RCAT_SCAN_MAX (1u << 16) /* distinct values counted when choosing categories */
#define RCAT_UNKNOWN (UINT32_MAX - 1)

struct rv_rcat {
	const rv_alloc *a;
	char field[RV_LEARN_CATEGORY_MAX];
	uint32_t n;                /* categories */
	char **name;               /* n names, NUL-terminated */
	uint32_t *table;           /* open addressing: category id or RV_RCAT_NONE */
	size_t tcap;               /* power of two >= 2 n */
	float sigma, sigma_star, sigma_f;
	float *M, *M_star, *M_f;   /* n * n each; M_star NULL until anchored, M_f NULL without Fisher */
	float lambda;
	float beta;                /* the pair model's weight of the distance term */
	float scale;               /* the term is served times this */
	double info, score2, zsig; /* sigma's information and squared scores by sample (rv_rcat_info_add), its z */
	/* training */
	double *facc;              /* Fisher accumulation, n * n, while estimating */
	uint32_t *fcnt;
	double fsig;
	uint64_t fsamples;
	/* slot -> category, RCAT_UNKNOWN until looked up */
	_Atomic uint32_t *slot_cat;
	uint32_t ncache;
};

/* ------------------------------------------------------------------------
 * Values and names
 * ---------------------------------------------------------------------- */

/* The value at a dotted path of an object, or NULL. */
static const cJSON *field_value(const cJSON *root, const char *path)
{
	const cJSON *j = root;
	const char *p = path;
	while (j && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (!cJSON_IsObject(j))
			return NULL;
		const cJSON *m = NULL, *it;
		cJSON_ArrayForEach(it, j)
		{
			if (it->string && strlen(it->string) == n && memcmp(it->string, p, n) == 0) {
				m = it;
				break;
			}
		}
		j = m;
		p = dot ? dot + 1 : p + n;
	}
	return j;
}

/* The category name of slot's value into buf (cap RCAT_NAME_MAX + 1);
 * false when it has none. */
static bool slot_name(const rv_db *db, const char *field, uint32_t slot, char *buf, size_t *len)
{
	if (!db->payload || !db->payload[slot])
		return false;
	const cJSON *v = field_value(db->payload[slot], field);
	if (!v)
		return false;
	int n;
	if (cJSON_IsString(v) && v->valuestring)
		n = snprintf(buf, RCAT_NAME_MAX + 1, "%s", v->valuestring);
	else if (cJSON_IsNumber(v))
		n = snprintf(buf, RCAT_NAME_MAX + 1, "%.17g", v->valuedouble);
	else if (cJSON_IsBool(v))
		n = snprintf(buf, RCAT_NAME_MAX + 1, "%s", cJSON_IsTrue(v) ? "true" : "false");
	else
		return false;
	if (n < 1 || n > RCAT_NAME_MAX)
		return false;
	*len = (size_t)n;
	return true;
}

static uint32_t lookup(const rv_rcat *c, const char *s, size_t len)
{
	if (!c->tcap)
		return RV_RCAT_NONE;
	size_t mask = c->tcap - 1, i = (size_t)rv_hash64(s, len, 0) & mask;
	for (;; i = (i + 1) & mask) {
		uint32_t id = c->table[i];
		if (id == RV_RCAT_NONE)
			return RV_RCAT_NONE;
		if (strlen(c->name[id]) == len && memcmp(c->name[id], s, len) == 0)
			return id;
	}
}

/* The hash table of c's names (c->n of them). */
static bool build_table(rv_rcat *c)
{
	size_t cap = 16;
	while (cap < 2 * (size_t)c->n)
		cap *= 2;
	c->table = rv_malloc(c->a, cap * sizeof(uint32_t));
	if (!c->table)
		return false;
	memset(c->table, 0xff, cap * sizeof(uint32_t));
	c->tcap = cap;
	for (uint32_t id = 0; id < c->n; id++) {
		size_t i = (size_t)rv_hash64(c->name[id], strlen(c->name[id]), 0) & (cap - 1);
		while (c->table[i] != RV_RCAT_NONE)
			i = (i + 1) & (cap - 1);
		c->table[i] = id;
	}
	return true;
}

uint32_t rv_rcat_of(const rv_rcat *c, const rv_db *db, uint32_t slot)
{
	if (!c || !c->n)
		return RV_RCAT_NONE;
	rv_rcat *m = (rv_rcat *)c; /* the cache is the only state a reader fills */
	if (slot < c->ncache) {
		uint32_t id = atomic_load_explicit(&m->slot_cat[slot], memory_order_relaxed);
		if (id != RCAT_UNKNOWN)
			return id;
	}
	char buf[RCAT_NAME_MAX + 1];
	size_t len;
	uint32_t id = slot < db->vecs.n && slot_name(db, c->field, slot, buf, &len) ? lookup(c, buf, len) : RV_RCAT_NONE;
	if (slot < c->ncache)
		atomic_store_explicit(&m->slot_cat[slot], id, memory_order_relaxed);
	return id;
}

/* ------------------------------------------------------------------------
 * Handles
 * ---------------------------------------------------------------------- */

static rv_rcat *rcat_new(const rv_alloc *a, const char *field)
{
	rv_rcat *c = rv_calloc(a, 1, sizeof *c);
	if (!c)
		return NULL;
	c->a = a;
	c->beta = 1.0f;
	c->scale = 1.0f;
	snprintf(c->field, sizeof c->field, "%s", field);
	return c;
}

void rv_rcat_free(rv_rcat *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; c->name && i < c->n; i++)
		rv_dealloc(c->a, c->name[i]);
	rv_dealloc(c->a, c->name);
	rv_dealloc(c->a, c->table);
	rv_dealloc(c->a, c->M);
	rv_dealloc(c->a, c->M_star);
	rv_dealloc(c->a, c->M_f);
	rv_dealloc(c->a, c->facc);
	rv_dealloc(c->a, c->fcnt);
	rv_dealloc(c->a, (void *)c->slot_cat);
	rv_dealloc(c->a, c);
}

/* Names (taking ownership of names[0..n), also when it fails: c frees
 * them), table, weights, slot cache. */
static bool rcat_fill(rv_rcat *c, char **names, uint32_t n, uint32_t nslots)
{
	c->name = names;
	c->n = n;
	if (!build_table(c))
		return false;
	size_t nn = (size_t)n * n;
	if (nn && !(c->M = rv_calloc(c->a, nn, sizeof(float))))
		return false;
	uint64_t want = (uint64_t)nslots + nslots / 4 + 256;
	c->ncache = want > UINT32_MAX ? UINT32_MAX : (uint32_t)want;
	if (n) {
		c->slot_cat = rv_malloc(c->a, (size_t)c->ncache * sizeof(uint32_t));
		if (!c->slot_cat)
			return false;
		for (uint32_t i = 0; i < c->ncache; i++)
			atomic_init(&c->slot_cat[i], RCAT_UNKNOWN);
	} else {
		c->ncache = 0;
	}
	return true;
}

typedef struct scan_entry {
	char *s;
	size_t len;
	uint64_t h;
	uint32_t count;
} scan_entry;

static int scan_cmp(const void *x, const void *y)
{
	const scan_entry *a = x, *b = y;
	if (a->count != b->count)
		return a->count < b->count ? 1 : -1;
	int r = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
	return r ? r : (a->len > b->len) - (a->len < b->len);
}

rv_status rv_rcat_create(rv_rcat **out, const rv_db *db, const char *field, const rv_rcat *prev, rv_err *e)
{
	if (!out || !db || !field || !field[0] || strlen(field) >= RV_LEARN_CATEGORY_MAX)
		return rv_err_set(e, RV_EINVAL, "category term: a collection and a field of 1..%d bytes are required",
				  RV_LEARN_CATEGORY_MAX - 1);
	*out = NULL;
	rv_status st = RV_OK;
	scan_entry *ent = NULL;
	uint32_t *tab = NULL;
	size_t nent = 0, ecap = 0, tcap = 1024;
	char **names = NULL;
	rv_rcat *c = rcat_new(db->a, field);
	if (!c || !(tab = rv_malloc(db->a, tcap * sizeof(uint32_t))))
		goto nomem;
	memset(tab, 0xff, tcap * sizeof(uint32_t));
	/* Count the values of the live points. */
	for (uint32_t s = 0; s < db->vecs.n; s++) {
		char buf[RCAT_NAME_MAX + 1];
		size_t len;
		if (!(db->flags[s] & RV_SLOT_LIVE) || !slot_name(db, field, s, buf, &len))
			continue;
		uint64_t h = rv_hash64(buf, len, 0);
		size_t i = (size_t)h & (tcap - 1);
		while (tab[i] != UINT32_MAX &&
		       !(ent[tab[i]].h == h && ent[tab[i]].len == len && memcmp(ent[tab[i]].s, buf, len) == 0))
			i = (i + 1) & (tcap - 1);
		if (tab[i] != UINT32_MAX) {
			ent[tab[i]].count++;
			continue;
		}
		if (nent >= RCAT_SCAN_MAX)
			continue;
		if (!rv_grow(db->a, (void **)&ent, &ecap, nent + 1, sizeof *ent))
			goto nomem;
		char *copy = rv_malloc(db->a, len + 1);
		if (!copy)
			goto nomem;
		memcpy(copy, buf, len + 1);
		ent[nent] = (scan_entry){ copy, len, h, 1 };
		tab[i] = (uint32_t)nent++;
		if (2 * nent > tcap) { /* grow and rehash */
			size_t ncap = tcap * 2;
			uint32_t *nt = rv_malloc(db->a, ncap * sizeof(uint32_t));
			if (!nt)
				goto nomem;
			memset(nt, 0xff, ncap * sizeof(uint32_t));
			for (size_t k = 0; k < nent; k++) {
				size_t j = (size_t)ent[k].h & (ncap - 1);
				while (nt[j] != UINT32_MAX)
					j = (j + 1) & (ncap - 1);
				nt[j] = (uint32_t)k;
			}
			rv_dealloc(db->a, tab);
			tab = nt;
			tcap = ncap;
		}
	}
	if (nent)
		qsort(ent, nent, sizeof *ent, scan_cmp);
	uint32_t n = nent < RV_RCAT_MAX ? (uint32_t)nent : RV_RCAT_MAX;
	if (n && !(names = rv_calloc(db->a, n, sizeof(char *))))
		goto nomem;
	for (uint32_t i = 0; i < n; i++) {
		names[i] = ent[i].s;
		ent[i].s = NULL;
	}
	if (!rcat_fill(c, names, n, db->vecs.n)) /* takes names, even when it fails */
		goto nomem;
	/* Going on: the weights (and Fisher estimates) of known names. */
	if (prev && strcmp(prev->field, field) == 0) {
		c->sigma = prev->sigma;
		c->sigma_f = prev->sigma_f;
		c->beta = prev->beta;
		c->scale = prev->scale;
	}
	if (prev && strcmp(prev->field, field) == 0 && n) {
		uint32_t *map = rv_malloc(db->a, n * sizeof(uint32_t));
		if (!map)
			goto nomem;
		for (uint32_t i = 0; i < n; i++)
			map[i] = lookup(prev, c->name[i], strlen(c->name[i]));
		if (prev->M_f && !(c->M_f = rv_calloc(db->a, (size_t)n * n, sizeof(float)))) {
			rv_dealloc(db->a, map);
			goto nomem;
		}
		for (uint32_t a = 0; a < n; a++)
			for (uint32_t b = 0; b < n; b++) {
				if (map[a] == RV_RCAT_NONE || map[b] == RV_RCAT_NONE)
					continue;
				size_t pi = (size_t)map[a] * prev->n + map[b];
				c->M[(size_t)a * n + b] = prev->M[pi];
				if (c->M_f)
					c->M_f[(size_t)a * n + b] = prev->M_f[pi];
			}
		rv_dealloc(db->a, map);
	}
	*out = c;
	c = NULL;
	goto done;
nomem:
	st = rv_err_nomem(e);
done:
	for (size_t i = 0; i < nent; i++)
		rv_dealloc(db->a, ent[i].s);
	rv_dealloc(db->a, ent);
	rv_dealloc(db->a, tab);
	rv_rcat_free(c);
	return st;
}

static bool dup_floats(const rv_alloc *a, float **dst, const float *src, size_t n)
{
	*dst = NULL;
	if (!src || !n)
		return true;
	if (!(*dst = rv_malloc(a, n * sizeof(float))))
		return false;
	memcpy(*dst, src, n * sizeof(float));
	return true;
}

rv_status rv_rcat_clone(rv_rcat **out, const rv_rcat *c, const rv_alloc *a, rv_err *e)
{
	*out = NULL;
	rv_rcat *d = rcat_new(a, c->field);
	char **names = NULL;
	if (!d || (c->n && !(names = rv_calloc(a, c->n, sizeof(char *)))))
		goto nomem;
	for (uint32_t i = 0; i < c->n; i++) {
		size_t len = strlen(c->name[i]);
		if (!(names[i] = rv_malloc(a, len + 1))) {
			for (uint32_t k = 0; k < i; k++)
				rv_dealloc(a, names[k]);
			rv_dealloc(a, names);
			goto nomem;
		}
		memcpy(names[i], c->name[i], len + 1);
	}
	if (!rcat_fill(d, names, c->n, c->ncache))
		goto nomem;
	size_t nn = (size_t)c->n * c->n;
	if (nn)
		memcpy(d->M, c->M, nn * sizeof(float));
	if (!dup_floats(a, &d->M_f, c->M_f, nn) || !dup_floats(a, &d->M_star, c->M_star, nn))
		goto nomem;
	d->sigma = c->sigma;
	d->beta = c->beta;
	d->scale = c->scale;
	d->sigma_star = c->sigma_star;
	d->sigma_f = c->sigma_f;
	d->lambda = c->lambda;
	*out = d;
	return RV_OK;
nomem:
	rv_rcat_free(d);
	return rv_err_nomem(e);
}

size_t rv_rcat_memory(const rv_rcat *c)
{
	if (!c)
		return 0;
	size_t nn = (size_t)c->n * c->n, b = sizeof *c + c->tcap * sizeof(uint32_t) + (size_t)c->ncache * 4;
	b += nn * sizeof(float) * (1 + (c->M_star != NULL) + (c->M_f != NULL));
	for (uint32_t i = 0; i < c->n; i++)
		b += sizeof(char *) + strlen(c->name[i]) + 1;
	return b;
}

const char *rv_rcat_field(const rv_rcat *c) { return c->field; }
uint32_t rv_rcat_count(const rv_rcat *c) { return c ? c->n : 0; }
float rv_rcat_sigma(const rv_rcat *c) { return c ? c->sigma : 0.0f; }
float rv_rcat_scale(const rv_rcat *c) { return c ? c->scale : 1.0f; }

/* ------------------------------------------------------------------------
 * Profile and term
 * ---------------------------------------------------------------------- */

void rv_rcat_profile_of(rv_rcat_profile *p, const rv_rcat *c, const rv_db *db, const uint32_t *slots, size_t n)
{
	p->n = 0;
	if (!c || !c->n)
		return;
	if (n > RV_RCAT_POOL)
		n = RV_RCAT_POOL;
	double total = 0;
	for (size_t i = 0; i < n; i++) {
		double w = 1.0 / sqrt((double)i + 1.0);
		total += w;
		uint32_t id = rv_rcat_of(c, db, slots[i]);
		if (id == RV_RCAT_NONE)
			continue;
		uint32_t j = 0;
		while (j < p->n && p->cat[j] != id)
			j++;
		if (j == p->n) {
			p->cat[p->n] = id;
			p->w[p->n++] = 0;
		}
		p->w[j] += (float)w;
	}
	for (uint32_t j = 0; j < p->n; j++)
		p->w[j] = (float)(p->w[j] / total);
}

static float profile_weight(const rv_rcat_profile *p, uint32_t cat)
{
	for (uint32_t j = 0; j < p->n; j++)
		if (p->cat[j] == cat)
			return p->w[j];
	return 0.0f;
}

/* The term with sigma times sscale (1 in the pair model, c->scale served). */
static float term_at(const rv_rcat *c, const rv_rcat_profile *p, uint32_t cat, float sscale)
{
	if (!c || cat >= c->n || !p->n)
		return 0.0f;
	float t = sscale * c->sigma * profile_weight(p, cat);
	for (uint32_t j = 0; j < p->n; j++)
		t += p->w[j] * c->M[(size_t)p->cat[j] * c->n + cat];
	return t;
}

static float raw_term(const rv_rcat *c, const rv_rcat_profile *p, uint32_t cat) { return term_at(c, p, cat, 1.0f); }

float rv_rcat_term(const rv_rcat *c, const rv_rcat_profile *p, uint32_t cat)
{
	return c ? term_at(c, p, cat, c->scale) : 0.0f;
}

/* ------------------------------------------------------------------------
 * Training
 * ---------------------------------------------------------------------- */

void rv_rcat_anchor(rv_rcat *c, float lambda)
{
	if (!c || !(lambda > 0) || !c->n) {
		if (c)
			c->lambda = 0;
		return;
	}
	size_t nn = (size_t)c->n * c->n;
	if (!c->M_star && !(c->M_star = rv_malloc(c->a, nn * sizeof(float)))) {
		c->lambda = 0; /* no memory: no anchor (plain l2), as without a Fisher estimate */
		return;
	}
	memcpy(c->M_star, c->M, nn * sizeof(float));
	c->sigma_star = c->sigma;
	c->lambda = lambda;
}

/* The regulariser's gradient of a weight: (l2 + lambda F)(theta - star). */
static double reg_grad(const rv_rcat *c, double l2, float theta, float star, float fisher)
{
	if (c->lambda > 0)
		return (l2 + c->lambda * fisher) * ((double)theta - star);
	return l2 * (double)theta;
}

/* Distinct categories among the candidates with their summed ds. */
static uint32_t group(uint32_t *bc, double *bds, const uint32_t *cats, const double *ds, size_t n, uint32_t ncat)
{
	uint32_t m = 0;
	for (size_t v = 0; v < n; v++) {
		if (cats[v] >= ncat || ds[v] == 0)
			continue;
		uint32_t j = 0;
		while (j < m && bc[j] != cats[v])
			j++;
		if (j == m) {
			bc[m] = cats[v];
			bds[m++] = 0;
		}
		bds[j] += ds[v];
	}
	return m;
}

#define RCAT_CAND 64 /* candidates per step, at most (a re-ranker sample has 11) */

/* d L / d term_v of the term's own pair loss, sum_pairs w softplus(-(t_c - t_s)). */
static void pair_grad(double *ds, const rv_rcat *c, const rv_rcat_profile *p, const uint32_t *cats,
		      const float *base, size_t n, const rv_gnn_pair *pairs, size_t npairs)
{
	float t[RCAT_CAND];
	for (size_t v = 0; v < n; v++) {
		t[v] = raw_term(c, p, cats[v]) + (base ? c->beta * base[v] : 0.0f);
		ds[v] = 0;
	}
	for (size_t i = 0; i < npairs; i++) {
		const rv_gnn_pair *pr = &pairs[i];
		if (pr->chosen >= n || pr->skipped >= n)
			continue;
		double g = -(double)pr->weight * rv_learn_sigmoid_neg((double)t[pr->chosen] - t[pr->skipped]);
		ds[pr->chosen] += g;
		ds[pr->skipped] -= g;
	}
}

/* The pair loss's gradient: dL/dsigma in *gs, and dL/dM[a][bc[j]] =
 * bds[j] p(a) for the m distinct categories bc[j] of the candidates. */
static uint32_t data_grad(uint32_t *bc, double *bds, double *gs, double *gb, const rv_rcat *c,
			  const rv_rcat_profile *p, const uint32_t *cats, const float *base, size_t n,
			  const rv_gnn_pair *pairs, size_t npairs)
{
	double ds[RCAT_CAND];
	n = n < RCAT_CAND ? n : RCAT_CAND;
	pair_grad(ds, c, p, cats, base, n, pairs, npairs);
	*gb = 0;
	for (size_t v = 0; base && v < n; v++)
		*gb += ds[v] * base[v];
	uint32_t m = group(bc, bds, cats, ds, n, c->n);
	*gs = 0;
	for (uint32_t j = 0; j < m; j++)
		*gs += bds[j] * profile_weight(p, bc[j]);
	return m;
}

void rv_rcat_step(rv_rcat *c, const rv_rcat_profile *p, const uint32_t *cats, const float *base, size_t n,
		  const rv_gnn_pair *pairs, size_t npairs)
{
	if (!c || !c->n || !p->n)
		return;
	uint32_t bc[RCAT_CAND];
	double bds[RCAT_CAND], gs, gb;
	uint32_t m = data_grad(bc, bds, &gs, &gb, c, p, cats, base, n, pairs, npairs);
	gs += reg_grad(c, RCAT_L2, c->sigma, c->sigma_star, c->sigma_f);
	c->sigma = (float)(c->sigma - RCAT_SIGMA_LR * gs);
	if (base)
		c->beta = (float)(c->beta - RCAT_BETA_LR * (gb + RCAT_L2 * ((double)c->beta - 1.0)));
	for (uint32_t j = 0; j < m; j++)
		for (uint32_t k = 0; k < p->n; k++) {
			size_t i = (size_t)p->cat[k] * c->n + bc[j];
			/* The regulariser's part implicitly (proximal step):
			 * (l2 + lambda F) lr may well pass 2, where an explicit
			 * step would diverge. */
			double star = c->lambda > 0 && c->M_star ? c->M_star[i] : 0.0;
			double kk = RCAT_L2 + (c->lambda > 0 && c->M_f ? c->lambda * c->M_f[i] : 0.0);
			double x = c->M[i] - RCAT_M_LR * bds[j] * p->w[k];
			c->M[i] = rv_learn_flush((float)((x + RCAT_M_LR * kk * star) / (1.0 + RCAT_M_LR * kk)));
		}
}

void rv_rcat_info_begin(rv_rcat *c)
{
	if (c)
		c->info = c->score2 = 0;
}

void rv_rcat_info_add(rv_rcat *c, const rv_rcat_profile *p, const uint32_t *cats, const float *base, size_t n,
		      const rv_gnn_pair *pairs, size_t npairs)
{
	if (!c || !c->n || !p->n)
		return;
	double g = 0;
	for (size_t i = 0; i < npairs; i++) {
		const rv_gnn_pair *pr = &pairs[i];
		if (pr->chosen >= n || pr->skipped >= n)
			continue;
		double d = raw_term(c, p, cats[pr->chosen]) - raw_term(c, p, cats[pr->skipped]) +
			   (base ? c->beta * ((double)base[pr->chosen] - base[pr->skipped]) : 0.0);
		double q = 1.0 - rv_learn_sigmoid_neg(d); /* sigmoid(d) */
		double x = (cats[pr->chosen] < c->n ? profile_weight(p, cats[pr->chosen]) : 0.0) -
			   (cats[pr->skipped] < c->n ? profile_weight(p, cats[pr->skipped]) : 0.0);
		c->info += pr->weight * q * (1.0 - q) * x * x;
		g += pr->weight * (1.0 - q) * x;
	}
	c->score2 += g * g;
}

void rv_rcat_info_end(rv_rcat *c)
{
	if (!c)
		return;
	/* Sandwich (cluster-robust by sample) standard error: the pair
	 * weights are inverse propensities, not counts, and a sample's pairs
	 * share their chosen item. */
	c->zsig = c->score2 > 0 ? c->sigma * c->info / sqrt(c->score2) : 0.0;
	c->scale = c->zsig >= RCAT_Z ? 1.0f / (c->beta > RCAT_BETA_MIN ? c->beta : RCAT_BETA_MIN) : 1.0f;
}

rv_status rv_rcat_fisher_begin(rv_rcat *c)
{
	if (!c || !c->n)
		return RV_OK;
	size_t nn = (size_t)c->n * c->n;
	rv_dealloc(c->a, c->facc);
	rv_dealloc(c->a, c->fcnt);
	c->facc = rv_calloc(c->a, nn, sizeof(double));
	c->fcnt = rv_calloc(c->a, nn, sizeof(uint32_t));
	c->fsig = 0;
	c->fsamples = 0;
	return c->facc && c->fcnt ? RV_OK : RV_ENOMEM;
}

void rv_rcat_fisher_add(rv_rcat *c, const rv_rcat_profile *p, const uint32_t *cats, const float *base, size_t n,
			const rv_gnn_pair *pairs, size_t npairs)
{
	if (!c || !c->n || !c->facc)
		return;
	c->fsamples++;
	if (!p->n)
		return;
	uint32_t bc[RCAT_CAND];
	double bds[RCAT_CAND], gs, gb;
	uint32_t m = data_grad(bc, bds, &gs, &gb, c, p, cats, base, n, pairs, npairs);
	c->fsig += gs * gs;
	for (uint32_t j = 0; j < m; j++)
		for (uint32_t k = 0; k < p->n; k++) {
			size_t i = (size_t)p->cat[k] * c->n + bc[j];
			double g = bds[j] * p->w[k];
			c->facc[i] += g * g;
			c->fcnt[i]++;
		}
}

void rv_rcat_fisher_end(rv_rcat *c, double keep)
{
	if (!c || !c->n || !c->facc)
		return;
	size_t nn = (size_t)c->n * c->n;
	/* c->sigma_f and c->M_f hold the previous term's estimate, mapped by
	 * name (rv_rcat_create). */
	double old_sig = keep > 0 ? c->sigma_f : 0.0;
	c->sigma_f = (float)(keep * old_sig + (1.0 - keep) * (c->fsamples ? c->fsig / (double)c->fsamples : 0.0));
	if (!c->M_f)
		c->M_f = rv_calloc(c->a, nn, sizeof(float));
	if (c->M_f)
		for (size_t i = 0; i < nn; i++) {
			double old = keep > 0 ? c->M_f[i] : 0.0;
			double now = c->fcnt[i] ? c->facc[i] / c->fcnt[i] : 0.0;
			c->M_f[i] = (float)(keep * old + (1.0 - keep) * now);
		}
	rv_dealloc(c->a, c->facc);
	rv_dealloc(c->a, c->fcnt);
	c->facc = NULL;
	c->fcnt = NULL;
}

bool rv_rcat_finite(const rv_rcat *c)
{
	if (!c)
		return true;
	if (!isfinite(c->sigma))
		return false;
	for (size_t i = 0, nn = (size_t)c->n * c->n; i < nn; i++)
		if (!isfinite(c->M[i]))
			return false;
	return true;
}

void rv_rcat_done(rv_rcat *c)
{
	if (!c)
		return;
	rv_dealloc(c->a, c->M_star);
	rv_dealloc(c->a, c->facc);
	rv_dealloc(c->a, c->fcnt);
	c->M_star = NULL;
	c->facc = NULL;
	c->fcnt = NULL;
	c->lambda = 0;
}

/* ------------------------------------------------------------------------
 * Byte form
 * ---------------------------------------------------------------------- */

void rv_rcat_encode(rv_buf *b, const rv_rcat *c)
{
	size_t fl = strlen(c->field);
	rv_buf_u16(b, (uint16_t)fl);
	rv_buf_put(b, c->field, fl);
	rv_buf_u32(b, c->n);
	for (uint32_t i = 0; i < c->n; i++) {
		size_t len = strlen(c->name[i]);
		rv_buf_u16(b, (uint16_t)len);
		rv_buf_put(b, c->name[i], len);
	}
	rv_buf_f32(b, c->sigma);
	rv_buf_f32(b, c->sigma_f);
	rv_buf_f32(b, c->beta);
	rv_buf_f32(b, c->scale);
	size_t nn = (size_t)c->n * c->n, cnt = 0;
	for (size_t i = 0; i < nn; i++)
		cnt += c->M[i] != 0 || (c->M_f && c->M_f[i] != 0);
	rv_buf_u32(b, (uint32_t)cnt);
	for (size_t i = 0; i < nn; i++)
		if (c->M[i] != 0 || (c->M_f && c->M_f[i] != 0)) {
			rv_buf_u32(b, (uint32_t)i);
			rv_buf_f32(b, c->M[i]);
			rv_buf_f32(b, c->M_f ? c->M_f[i] : 0.0f);
		}
}

rv_status rv_rcat_decode(rv_rcat **out, const rv_db *db, rv_reader *rd, rv_err *e)
{
	*out = NULL;
	char field[RV_LEARN_CATEGORY_MAX];
	uint16_t fl = rv_reader_u16(rd);
	const uint8_t *fb = fl ? rv_reader_bytes(rd, fl) : NULL;
	if (rd->bad || fl == 0 || fl >= RV_LEARN_CATEGORY_MAX || !fb || memchr(fb, 0, fl))
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: category field of %u bytes", fl);
	memcpy(field, fb, fl);
	field[fl] = 0;
	uint32_t n = rv_reader_u32(rd);
	if (rd->bad || n > RV_RCAT_MAX || rv_reader_left(rd) < (size_t)n * 2)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: %u categories", n);
	rv_rcat *c = rcat_new(db->a, field);
	char **names = n ? rv_calloc(db->a, n, sizeof(char *)) : NULL;
	rv_status st = RV_OK;
	if (!c || (n && !names)) {
		st = rv_err_nomem(e);
		goto fail_names;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint16_t len = rv_reader_u16(rd);
		const uint8_t *s = len ? rv_reader_bytes(rd, len) : NULL;
		if (rd->bad || !s || len > RCAT_NAME_MAX || memchr(s, 0, len)) {
			st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: category %u name of %u bytes", i, len);
			goto fail_names;
		}
		if (!(names[i] = rv_malloc(db->a, (size_t)len + 1))) {
			st = rv_err_nomem(e);
			goto fail_names;
		}
		memcpy(names[i], s, len);
		names[i][len] = 0;
	}
	bool filled = rcat_fill(c, names, n, db->vecs.n);
	names = NULL; /* c's now */
	if (!filled) {
		st = rv_err_nomem(e);
		goto fail;
	}
	/* Names must be distinct: lookup finds the first of equal ones. */
	for (uint32_t i = 0; i < n; i++)
		if (lookup(c, c->name[i], strlen(c->name[i])) != i) {
			st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: category name %u repeated", i);
			goto fail;
		}
	c->sigma = rv_reader_f32(rd);
	c->sigma_f = rv_reader_f32(rd);
	c->beta = rv_reader_f32(rd);
	c->scale = rv_reader_f32(rd);
	if (!isfinite(c->beta) || !(c->scale > 0) || !isfinite(c->scale)) {
		st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: category beta %g or scale %g", (double)c->beta,
				(double)c->scale);
		goto fail;
	}
	uint32_t cnt = rv_reader_u32(rd);
	size_t nn = (size_t)n * n;
	if (rd->bad || !isfinite(c->sigma) || !(c->sigma_f >= 0) || !isfinite(c->sigma_f) || cnt > nn ||
	    rv_reader_left(rd) < (size_t)cnt * 12) {
		st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: category weight %g (Fisher %g) or %u entries of %zu",
				(double)c->sigma, (double)c->sigma_f, cnt, nn);
		goto fail;
	}
	if (cnt && !(c->M_f = rv_calloc(db->a, nn, sizeof(float)))) {
		st = rv_err_nomem(e);
		goto fail;
	}
	uint32_t last = 0;
	for (uint32_t k = 0; k < cnt; k++) {
		uint32_t i = rv_reader_u32(rd);
		float v = rv_reader_f32(rd), f = rv_reader_f32(rd);
		if (i >= nn || (k && i <= last) || !isfinite(v) || !(f >= 0) || !isfinite(f)) {
			st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: category entry %u (index %u after %u) out of order or not finite", k, i, last);
			goto fail;
		}
		last = i;
		c->M[i] = v;
		c->M_f[i] = f;
	}
	*out = c;
	return RV_OK;
fail_names:
	for (uint32_t i = 0; names && i < n; i++)
		rv_dealloc(db->a, names[i]);
	rv_dealloc(db->a, names);
fail:
	rv_rcat_free(c);
	return st;
}

/*
 * learn_bench.c - does ruvector's search learn from feedback? Simulated
 * users with a hidden notion of relevance search real data sets through
 * the public API, give feedback on what they see, and the ranking is
 * measured against the hidden truth on queries the users issued (seen)
 * and on queries never issued during training (held-out).
 *
 *   learn_bench [--data DIR] [--out DIR] [--work DIR] [--sets fashion,fiori,debian]
 *               [--learners micro,base,gnn,all] [--fashion-n 20000]
 *               [--events 10000] [--max-events 100000] [--every 2000]
 *               [--budget-min 15] [--seed 1] [--quick] [--no-random] [--no-shift]
 *               [--shift-learner micro|base|gnn|all] [--shift-reps 4] [--no-away]
 *               [--no-category]
 *
 * Experiments (docs/LEARNING.md explains them and the simulation):
 *   learning  per data set and learner (MICRO, BASE, GNN alone, ALL): NDCG@10
 *             and recall@10 after 0, 1k, 2k, 4k, ... 10k events, then on to
 *             100k (all learners when the projected run time fits the
 *             budget, else ALL only: the output says which); consolidation
 *             every --every events and at each checkpoint
 *   random    the same users replaced by uniformly random clicks with
 *             random rewards: learning must not hurt
 *   shift     workload A then B then A again, with EWC++ at its default
 *             strength and with it off (learners ALL, or --shift-learner):
 *             Fashion-MNIST (permutation P1, then P2) once, Fiori (good
 *             items and query region, then others) in 4 replicates
 *             with other users each, reported as a mean; --shift-reps N
 *             runs N replicates of every set
 *   latency   rv_db_feedback (mean, p99), search with learning on vs off
 *             (RV_SEARCH_NO_LEARNING), consolidation, rv_db_learn_eval's
 *             MicroLoRA step and re-ranking cost (also for a 100-item pool)
 *
 * Items of the Debian set carry their section as payload ({"section":
 * "libs"}) and its runs name it as the category field
 * (rv_learn_config.category), so the GNN learner also has the re-ranker's
 * category term; --no-category leaves the field unset (vectors only).
 *
 * Output: --out/results.md (the tables), --out/curve-SET.tsv and
 * --out/shift.tsv for bench/learn/plots.gp; progress on stdout.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "learn_bench.h"
#include "ruvector.h"
#include "ruvector_learn.h"

#ifndef RV_DATA_DIR
#define RV_DATA_DIR "data"
#endif

#define MAX_POINTS 64
#define EVAL_TRAIN_MAX 500   /* seen queries evaluated (a prefix of the train pool) */
#define LATENCY_ROUNDS 4
#define LB_MAX_REPS 8        /* shift replicates, at most */     /* pairs of passes (on, off) over the held-out queries when timing search */

static const unsigned LEARNER_MASK[4] = { RV_LEARN_MICRO, RV_LEARN_BASE, RV_LEARN_GNN, RV_LEARN_ALL };
static const char *const LEARNER_NAME[4] = { "MICRO", "BASE", "GNN", "ALL" };

/* ======================================================================
 * Options
 * ==================================================================== */

typedef struct opts {
	const char *data, *out, *work;
	char sets[256];
	bool learner_on[4];
	lb_data_opts d;
	uint64_t events;      /* phase 1: every learner */
	uint64_t max_events;  /* phase 2: ALL, others within the budget */
	uint64_t every;       /* consolidation period */
	double budget_s;
	bool random, shift;
	int shift_learner;    /* index into LEARNER_*: the learners of the shift runs */
	unsigned shift_reps;  /* replicates (other users) of Fiori's shift, each with EWC++ on and off */
	bool reps_given;      /* --shift-reps was given: every set's shift runs shift_reps */
	bool no_away;         /* every run with rv_learn_config.away_regions = 0 */
	bool no_category;     /* no run names a category field */
} opts;

/* ======================================================================
 * Runs
 * ==================================================================== */

typedef struct point {
	uint64_t events;
	double ndcg_h, rec_h, ndcg_t, rec_t; /* held-out, seen (train) */
	double rel_h, rel_t;                 /* share of the top 10 that is relevant at all */
	double se_h, se_t;                   /* standard error of the mean per-query NDCG change since 0 */
	double ndcg_b;                       /* shift: workload B, held-out */
	uint32_t version;                    /* active learning version (0: none) */
	unsigned version_learners;           /* RV_LEARN_* trained into it */
} point;

enum { KIND_CLICK_RELEVANT, KIND_CLICK_OTHER, KIND_CONVERSION, KIND_SKIP, KIND_RANDOM };

typedef struct run {
	char name[64];
	const lb_set *set;
	int learner;              /* index into LEARNER_*, -1 for none */
	unsigned learners;
	bool random_mode;
	unsigned rep;             /* shift replicate: its users' streams differ */
	bool ewc_set;
	float ewc_lambda;
	rv_db *db;
	lb_rng qrng, urng;
	uint64_t events, impressions, next_consolidate, last_consolidated;
	double train_s, eval_s, consolidate_s, commit_s;
	double train_s_phase1;
	unsigned n_consolidate;
	/* Live trials: consolidations that made a candidate, and candidates
	 * promoted (the active version changed between consolidations). */
	unsigned n_trials, n_promoted;
	uint32_t last_active;
	uint64_t promoted_at[8]; /* events at the consolidation after each of the first 8 */
	double *fb_us;
	size_t n_fb, cap_fb;
	point pts[MAX_POINTS];
	size_t n_pts;
	double *ndcg0;            /* per pool query NDCG@10 at the first checkpoint */
	double search_off_us, search_on_us;
	bool have_search;
	rv_learn_eval ev, ev100;
	double search100_off_us, search100_on_us;
	bool have_ev, have_ev100;
	uint64_t kinds[5];        /* events: KIND_* */
	double reopen_before, reopen_after;
	bool have_reopen;
	bool extended;
	bool failed;
	char err[512];
} run;

static void run_fail(run *r, const char *what, rv_status st)
{
	if (r->failed)
		return;
	r->failed = true;
	snprintf(r->err, sizeof r->err, "%s: %s: %s", what, rv_status_str(st), r->db ? rv_errmsg(r->db) : "");
	fprintf(stderr, "learn_bench: %s: %s\n", r->name, r->err);
}

static bool consolidating(const run *r) { return r->learners & (RV_LEARN_BASE | RV_LEARN_GNN); }

static uint32_t row_of(const rv_hit *h) { return (uint32_t)strtoul(h->id, NULL, 10); }

/* Search for qv (the set's dim floats); rows[0..*n) the hits as base
 * rows. Returns the search id, 0 on failure (r->failed set). */
static uint64_t search_rows(run *r, const float *qv, unsigned flags, uint32_t k, uint32_t *rows, size_t *n)
{
	rv_search_opts so = RV_SEARCH_OPTS_INIT;
	so.k = k;
	so.flags = flags;
	rv_results *res = NULL;
	rv_status st = rv_db_search(&res, r->db, qv, &so);
	*n = 0;
	if (st != RV_OK) {
		run_fail(r, "rv_db_search", st);
		return 0;
	}
	size_t m = rv_results_count(res);
	const rv_hit *h = rv_results_hits(res);
	for (size_t i = 0; i < m && i < k; i++)
		rows[i] = row_of(&h[i]);
	*n = m < k ? m : k;
	uint64_t id = rv_results_search_id(res);
	rv_results_free(res);
	return id;
}

static void consolidate(run *r)
{
	/* A consolidation trains on the events since the previous one and
	 * needs at least 100 of them. */
	if (!consolidating(r) || r->failed || r->events < r->last_consolidated + 100)
		return;
	rv_learn_status ls;
	memset(&ls, 0, sizeof ls);
	ls.size = sizeof ls;
	if (rv_db_learn_status(&ls, r->db) == RV_OK && ls.active_version != r->last_active) {
		if (r->n_promoted < sizeof r->promoted_at / sizeof r->promoted_at[0])
			r->promoted_at[r->n_promoted] = r->events;
		r->n_promoted++;
	}
	double t0 = lb_now();
	uint32_t version = 0;
	rv_status st = rv_db_learn_consolidate(r->db, 0, &version);
	r->consolidate_s += lb_now() - t0;
	r->n_consolidate++;
	r->last_consolidated = r->events;
	if (st != RV_OK) {
		run_fail(r, "rv_db_learn_consolidate", st);
		return;
	}
	if (rv_db_learn_status(&ls, r->db) == RV_OK) {
		r->last_active = ls.active_version;
		for (uint32_t i = 0; i < ls.n_versions && i < RV_LEARN_MAX_VERSIONS; i++)
			r->n_trials += ls.versions[i].version == version && ls.versions[i].candidate;
	}
}

/* One line: the run's live trials and when candidates were promoted. */
static void print_trials(const run *r)
{
	if (!consolidating(r) || r->failed)
		return;
	printf("  %-24s %u consolidations, %u made a candidate, %u promoted", r->name, r->n_consolidate, r->n_trials,
	       r->n_promoted);
	for (unsigned i = 0; i < r->n_promoted && i < sizeof r->promoted_at / sizeof r->promoted_at[0]; i++)
		printf("%s%llu", i ? ", " : " (by ", (unsigned long long)r->promoted_at[i]);
	printf("%s\n", r->n_promoted ? " events)" : "");
}

/* Impressions of train queries until r->events reaches `until`. */
static void train(run *r, const lb_workload *w, uint64_t until, uint64_t every)
{
	const lb_set *s = r->set;
	uint32_t rows[LB_K];
	lb_event ev[LB_MAX_EVENTS];
	char id[16];
	double t_start = lb_now();
	while (r->events < until && !r->failed) {
		size_t q = lb_rng_below(&r->qrng, (uint32_t)s->n_train);
		if (w->qmask && !w->qmask[q])
			continue; /* another region's query (prepare_set checked there are some of this one's) */
		size_t n = 0;
		uint64_t sid = search_rows(r, s->queries + q * s->dim, 0, LB_K, rows, &n);
		if (!sid)
			break;
		size_t m = lb_user(ev, w, q, rows, n, r->random_mode, &r->urng);
		for (size_t i = 0; i < m; i++) {
			snprintf(id, sizeof id, "%u", ev[i].row);
			double t0 = lb_now();
			rv_status st = rv_db_feedback(r->db, sid, id, ev[i].reward);
			double dt = lb_now() - t0;
			if (st != RV_OK) {
				run_fail(r, "rv_db_feedback", st);
				break;
			}
			if (r->n_fb == r->cap_fb) {
				size_t cap = r->cap_fb ? r->cap_fb * 2 : 4096;
				double *p = realloc(r->fb_us, cap * sizeof *p);
				if (!p) {
					fprintf(stderr, "learn_bench: out of memory\n");
					exit(1);
				}
				r->fb_us = p;
				r->cap_fb = cap;
			}
			r->fb_us[r->n_fb++] = dt * 1e6;
			r->events++;
			if (ev[i].kind == 0)
				r->kinds[lb_relevant(w, q, ev[i].row) ? KIND_CLICK_RELEVANT : KIND_CLICK_OTHER]++;
			else
				r->kinds[ev[i].kind == 1 ? KIND_CONVERSION : ev[i].kind == 2 ? KIND_SKIP : KIND_RANDOM]++;
		}
		r->impressions++;
		if (r->events >= r->next_consolidate) {
			consolidate(r);
			while (r->next_consolidate <= r->events)
				r->next_consolidate += every;
		}
	}
	/* Consolidate at every checkpoint too (a no-op when the period just
	 * did). */
	consolidate(r);
	r->train_s += lb_now() - t_start;
}

/* Mean NDCG@10, recall@10 and share of relevant hits of queries
 * [from, to) of the pool. */
static void eval_range(run *r, const lb_workload *w, size_t from, size_t to, unsigned flags, double *ndcg,
		       double *rec, double *rel, double *per_q)
{
	const lb_set *s = r->set;
	uint32_t rows[LB_K];
	double sn = 0, sr = 0, sp = 0;
	size_t cnt = 0;
	for (size_t q = from; q < to && !r->failed; q++) {
		size_t n = 0;
		if (w->qmask && !w->qmask[q])
			continue;
		cnt++;
		if (!search_rows(r, s->queries + q * s->dim, flags, LB_K, rows, &n))
			break;
		double v = lb_ndcg(w, q, rows, n);
		sn += v;
		if (per_q)
			per_q[q] = v;
		sr += lb_recall(w, q, rows, n);
		for (size_t i = 0; i < n; i++)
			sp += lb_relevant(w, q, rows[i]) / (double)LB_K;
	}
	double m = cnt ? (double)cnt : 1;
	*ndcg = sn / m;
	*rec = sr / m;
	if (rel)
		*rel = sp / m;
}

/* "v3 BASE+GNN": the active version and what was trained into it; "-"
 * when none is active. */
static void learners_str(char *buf, size_t cap, uint32_t version, unsigned learners)
{
	if (!version) {
		snprintf(buf, cap, "-");
		return;
	}
	snprintf(buf, cap, "v%u %s%s%s%s", version, learners & RV_LEARN_BASE ? "BASE" : "",
		 (learners & RV_LEARN_BASE) && (learners & RV_LEARN_GNN) ? "+" : "", learners & RV_LEARN_GNN ? "GNN" : "",
		 learners & (RV_LEARN_BASE | RV_LEARN_GNN) ? "" : "nothing");
}

/* Standard error of the mean of a[i] - b[i] over [from, to) (where mask,
 * if any, is set). */
static double paired_se(const double *a, const double *b, size_t from, size_t to, const uint8_t *mask)
{
	size_t n = 0;
	double m = 0, ss = 0;
	for (size_t i = from; i < to; i++)
		if (!mask || mask[i]) {
			m += a[i] - b[i];
			n++;
		}
	if (n < 2)
		return NAN;
	m /= (double)n;
	for (size_t i = from; i < to; i++)
		if (!mask || mask[i])
			ss += (a[i] - b[i] - m) * (a[i] - b[i] - m);
	return sqrt(ss / (double)(n - 1) / (double)n);
}

static size_t n_eval_train(const lb_set *s) { return s->n_train < EVAL_TRAIN_MAX ? s->n_train : EVAL_TRAIN_MAX; }

/* A checkpoint: held-out and seen metrics under w (and held-out NDCG under
 * wb when given). */
static void checkpoint(run *r, const lb_workload *w, const lb_workload *wb)
{
	const lb_set *s = r->set;
	if (r->failed || r->n_pts == MAX_POINTS)
		return;
	double t0 = lb_now();
	point *p = &r->pts[r->n_pts];
	memset(p, 0, sizeof *p);
	p->events = r->events;
	double *per_q = calloc(s->nq, sizeof *per_q);
	if (!per_q) {
		fprintf(stderr, "learn_bench: out of memory\n");
		exit(1);
	}
	eval_range(r, w, s->n_train, s->nq, 0, &p->ndcg_h, &p->rec_h, &p->rel_h, per_q);
	if (wb) {
		double rb;
		eval_range(r, wb, s->n_train, s->nq, 0, &p->ndcg_b, &rb, NULL, NULL);
		p->ndcg_t = p->rec_t = p->rel_t = NAN;
	} else {
		eval_range(r, w, 0, n_eval_train(s), 0, &p->ndcg_t, &p->rec_t, &p->rel_t, per_q);
	}
	/* Paired standard errors: the same queries before and after. */
	if (!r->ndcg0) {
		r->ndcg0 = per_q;
		per_q = NULL;
	} else {
		p->se_h = paired_se(per_q, r->ndcg0, s->n_train, s->nq, w->qmask);
		p->se_t = paired_se(per_q, r->ndcg0, 0, n_eval_train(s), w->qmask);
	}
	free(per_q);
	rv_learn_status ls;
	memset(&ls, 0, sizeof ls);
	ls.size = sizeof ls;
	if (!r->failed && rv_db_learn_status(&ls, r->db) == RV_OK) {
		p->version = ls.active_version;
		for (uint32_t i = 0; i < ls.n_versions; i++)
			if (ls.versions[i].version == ls.active_version)
				p->version_learners = ls.versions[i].learners;
	}
	r->eval_s += lb_now() - t0;
	if (r->failed)
		return;
	r->n_pts++;
	char vl[32];
	learners_str(vl, sizeof vl, p->version, p->version_learners);
	if (wb)
		printf("  %-24s %7llu events  A held-out NDCG@10 %.4f  B held-out NDCG@10 %.4f  version %s\n", r->name,
		       (unsigned long long)p->events, p->ndcg_h, p->ndcg_b, vl);
	else
		printf("  %-24s %7llu events  held-out NDCG@10 %.4f recall@10 %.4f rel %.3f  seen NDCG@10 %.4f "
		       "recall@10 %.4f rel %.3f  version %s\n", r->name, (unsigned long long)p->events, p->ndcg_h, p->rec_h,
		       p->rel_h, p->ndcg_t, p->rec_t, p->rel_t, vl);
	fflush(stdout);
}

static int copy_file(const char *src, const char *dst)
{
	int rc = -1;
	FILE *in = fopen(src, "rb"), *out = NULL;
	if (!in) {
		fprintf(stderr, "learn_bench: cannot open %s: %s\n", src, strerror(errno));
		return -1;
	}
	if (!(out = fopen(dst, "wb"))) {
		fprintf(stderr, "learn_bench: cannot create %s: %s\n", dst, strerror(errno));
		goto done;
	}
	static char buf[1 << 16];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, out) != n) {
			fprintf(stderr, "learn_bench: cannot write %s: %s\n", dst, strerror(errno));
			goto done;
		}
	rc = ferror(in) ? -1 : 0;
done:
	fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	return rc;
}

/* The payload of base row i: {"section":"NAME"} on a set with sections
 * (malloc'd), else NULL. Section names are Debian's (letters, digits,
 * '-', '+', '.', '/'): no JSON escaping needed, which is checked. */
static char *section_payload(const lb_set *s, size_t i)
{
	if (!s->base_section || s->base_section[i] == UINT32_MAX)
		return NULL;
	const char *name = s->section_names[s->base_section[i]];
	if (strpbrk(name, "\"\\") || strlen(name) > 200)
		return NULL;
	char *p = malloc(strlen(name) + 16);
	if (p)
		sprintf(p, "{\"section\":\"%s\"}", name);
	return p;
}

/* Whether the cached collection holds the set's payloads (a file built
 * before the Debian set had them does not). */
static bool payloads_match(rv_db *db, const lb_set *s)
{
	for (size_t i = 0; s->base_section && i < s->n; i++) {
		char *want = section_payload(s, i), *got = NULL, id[12];
		if (!want)
			continue;
		snprintf(id, sizeof id, "%u", (unsigned)i);
		bool same = rv_db_get(db, id, NULL, &got) == RV_OK && got && strcmp(got, want) == 0;
		rv_free(got);
		free(want);
		return same;
	}
	return true;
}

/* The collection of a set, built once and cached under work/ (a fresh copy
 * per run, so every run starts from the same graph with nothing learned). */
static int base_db(char *path, size_t cap, const opts *o, const lb_set *s)
{
	snprintf(path, cap, "%s/%s-n%zu-d%u-s%llu.rvf", o->work, s->name, s->n, s->dim,
		 (unsigned long long)o->d.seed);
	rv_db *db = NULL;
	rv_open_opts oo = RV_OPEN_OPTS_INIT;
	oo.threads = 2;
	if (access(path, F_OK) == 0) {
		rv_status st = rv_db_open(&db, path, &oo);
		bool ok = st == RV_OK && rv_db_count(db) == s->n && rv_db_dim(db) == s->dim && payloads_match(db, s);
		rv_db_close(db);
		if (ok)
			return 0;
		fprintf(stderr, "learn_bench: %s does not hold the %s set; rebuilding it\n", path, s->name);
		unlink(path);
	}
	printf("building the %s collection (%zu x %u, cosine, m=16, ef_construction=200)\n", s->name, s->n, s->dim);
	fflush(stdout);
	double t0 = lb_now();
	char tmp[4300];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	oo.dim = s->dim;
	oo.metric = RV_METRIC_COSINE;
	rv_status st = rv_db_create(&db, tmp, &oo);
	int rc = -1;
	rv_point *pts = calloc(s->n, sizeof *pts);
	char *ids = calloc(s->n, 12);
	if (!pts || !ids) {
		fprintf(stderr, "learn_bench: out of memory\n");
		goto done;
	}
	if (st != RV_OK)
		goto fail;
	for (size_t i = 0; i < s->n; i++) {
		snprintf(ids + 12 * i, 12, "%u", (unsigned)i);
		pts[i].id = ids + 12 * i;
		pts[i].vector = s->base + i * s->dim;
		if (!(pts[i].payload = section_payload(s, i)) && s->base_section &&
		    s->base_section[i] != UINT32_MAX) {
			fprintf(stderr, "learn_bench: out of memory\n");
			goto done;
		}
	}
	if ((st = rv_db_upsert(db, pts, s->n)) != RV_OK || (st = rv_db_commit(db)) != RV_OK)
		goto fail;
	rv_db_close(db);
	db = NULL;
	if (rename(tmp, path) != 0) {
		fprintf(stderr, "learn_bench: cannot rename %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	printf("  built in %.1f s\n", lb_now() - t0);
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "learn_bench: building %s: %s: %s\n", path, rv_status_str(st), db ? rv_errmsg(db) : "");
done:
	rv_db_close(db);
	for (size_t i = 0; pts && i < s->n; i++)
		free((char *)pts[i].payload);
	free(pts);
	free(ids);
	return rc;
}

static void run_path(char *path, size_t cap, const run *r, const opts *o)
{
	snprintf(path, cap, "%s/run-%s.rvf", o->work, r->name);
	for (char *c = path + strlen(o->work) + 1; *c; c++)
		if (*c == '/' || *c == ' ')
			*c = '_';
}

static int run_open(run *r, const opts *o, const char *base_path)
{
	char path[4200];
	run_path(path, sizeof path, r, o);
	unlink(path);
	if (copy_file(base_path, path))
		return -1;
	rv_open_opts oo = RV_OPEN_OPTS_INIT;
	oo.threads = 1;
	rv_status st = rv_db_open(&r->db, path, &oo);
	if (st != RV_OK) {
		run_fail(r, "rv_db_open", st);
		return -1;
	}
	/* The same users in every run: query choice and user decisions come
	 * from streams seeded alike. */
	r->qrng.s = o->d.seed * 0x51ull + 1 + r->rep * 0x9e3779b97f4a7c15ull;
	r->urng.s = o->d.seed * 0x77ull + 2 + r->rep * 0xc2b2ae3d27d4eb4full;
	r->next_consolidate = o->every;
	r->last_consolidated = 0;
	rv_learn_config c = RV_LEARN_CONFIG_INIT;
	c.learners = r->learners;
	if (r->ewc_set)
		c.ewc_lambda = r->ewc_lambda;
	if (o->no_away)
		c.away_regions = 0;
	if (r->set->base_section && !o->no_category)
		snprintf(c.category, sizeof c.category, "section");
	if ((st = rv_db_learn_configure(r->db, &c)) != RV_OK) {
		run_fail(r, "rv_db_learn_configure", st);
		return -1;
	}
	if ((st = rv_db_set_learning(r->db, 1)) != RV_OK) {
		run_fail(r, "rv_db_set_learning", st);
		return -1;
	}
	return 0;
}

static void run_close(run *r)
{
	rv_db_close(r->db);
	r->db = NULL;
}

/* Commit, close and open the run's collection again. */
static rv_status reopen(run *r, const opts *o)
{
	double t0 = lb_now();
	rv_status st = rv_db_commit(r->db);
	r->commit_s += lb_now() - t0;
	if (st != RV_OK) {
		run_fail(r, "rv_db_commit", st);
		return st;
	}
	char path[4200];
	run_path(path, sizeof path, r, o);
	run_close(r);
	rv_open_opts oo = RV_OPEN_OPTS_INIT;
	oo.threads = 1;
	if ((st = rv_db_open(&r->db, path, &oo)) != RV_OK)
		run_fail(r, "rv_db_open (reopen)", st);
	return st;
}

/* Mean search time of the held-out queries with learning on and off, in
 * CPU time of this thread: on a loaded machine wall time counts the time
 * other processes held the core, which swung the ratio by tens of per
 * cent between passes (a search is single-threaded, so its thread's CPU
 * time is its cost). Whole passes alternate (on, off, off, on, ...):
 * timing the same query twice in a row would hand the second search a
 * warm cache. */
static void time_search(run *r, double *on_us, double *off_us)
{
	const lb_set *s = r->set;
	uint32_t rows[LB_K];
	double t[2] = { 0, 0 };
	size_t n[2] = { 0, 0 }, m;
	/* At least LATENCY_ROUNDS pairs of passes and 2000 searches a side:
	 * small sets need more passes to rise above timer and load noise. */
	size_t nh = s->n_held ? s->n_held : 1;
	int rounds = (int)((2000 + nh - 1) / nh);
	if (rounds < LATENCY_ROUNDS)
		rounds = LATENCY_ROUNDS;
	for (int pass = 0; pass < 2 * rounds && !r->failed; pass++) {
		int off = (pass & 1) ^ ((pass >> 1) & 1);
		double t0 = lb_cpu_now();
		for (size_t q = s->n_train; q < s->nq && !r->failed; q++) {
			search_rows(r, s->queries + q * s->dim, off ? RV_SEARCH_NO_LEARNING : 0, LB_K, rows, &m);
			n[off]++;
		}
		t[off] += lb_cpu_now() - t0;
	}
	*on_us = n[0] ? t[0] / (double)n[0] * 1e6 : 0;
	*off_us = n[1] ? t[1] / (double)n[1] * 1e6 : 0;
}

/* After the phase-1 events: latency, the library's own evaluation, and
 * (ALL only) that a commit and reopen keep what was learned. */
static void after_phase1(run *r, const opts *o, const lb_workload *w)
{
	if (r->failed)
		return;
	r->train_s_phase1 = r->train_s;
	printf("  %-24s %llu events in %llu impressions: %llu clicks on relevant items, %llu on others, "
	       "%llu conversions, %llu skip ratings; %.1f s\n", r->name, (unsigned long long)r->events,
	       (unsigned long long)r->impressions, (unsigned long long)r->kinds[KIND_CLICK_RELEVANT],
	       (unsigned long long)r->kinds[KIND_CLICK_OTHER], (unsigned long long)r->kinds[KIND_CONVERSION],
	       (unsigned long long)r->kinds[KIND_SKIP], r->train_s);
	rv_learn_status ls;
	memset(&ls, 0, sizeof ls);
	ls.size = sizeof ls;
	if (rv_db_learn_status(&ls, r->db) == RV_OK)
		printf("  %-24s versions %u, active %u (learners %u), MicroLoRA steps since %llu, %u regions\n", r->name,
		       ls.n_versions, ls.active_version,
		       ls.n_versions ? ls.versions[ls.n_versions - 1].learners : 0, (unsigned long long)ls.micro_steps,
		       ls.regions);
	for (uint32_t i = 0; i < ls.n_versions && i < RV_LEARN_MAX_VERSIONS; i++) {
		const rv_learn_version *v = &ls.versions[i];
		char what[64];
		learners_str(what, sizeof what, v->version, v->learners);
		printf("  %-24s   %s (from v%u, %llu events): held-out logged NDCG@10 %.4f -> %.4f%s%s, "
		       "interleaving %llu wins %llu losses\n", r->name, what, v->parent,
		       (unsigned long long)v->events, v->ndcg_before, v->ndcg_after,
		       v->active ? ", active" : "", v->candidate ? ", candidate" : "",
		       (unsigned long long)v->interleave_wins, (unsigned long long)v->interleave_losses);
	}
	time_search(r, &r->search_on_us, &r->search_off_us);
	r->have_search = !r->failed;
	memset(&r->ev, 0, sizeof r->ev);
	r->ev.size = sizeof r->ev;
	rv_status st = rv_db_learn_eval(&r->ev, r->db);
	if (st == RV_OK)
		r->have_ev = true;
	else
		fprintf(stderr, "learn_bench: %s: rv_db_learn_eval: %s: %s\n", r->name, rv_status_str(st),
			rv_errmsg(r->db));
	if (r->learner != 3 || r->random_mode)
		return;
	/* Commit, close, reopen: the learned ranking must come back as it was. */
	const lb_set *s = r->set;
	double rec;
	eval_range(r, w, s->n_train, s->nq, 0, &r->reopen_before, &rec, NULL, NULL);
	if (reopen(r, o) != RV_OK)
		return;
	eval_range(r, w, s->n_train, s->nq, 0, &r->reopen_after, &rec, NULL, NULL);
	r->have_reopen = !r->failed;
}

/* ======================================================================
 * Report helpers
 * ==================================================================== */

static double pct(double after, double before) { return before > 0 ? (after / before - 1.0) * 100.0 : NAN; }

static const point *point_at(const run *r, uint64_t events)
{
	/* The first checkpoint at or after `events` (impressions overshoot a
	 * little). */
	for (size_t i = 0; i < r->n_pts; i++)
		if (r->pts[i].events >= events && (events > 0 || r->pts[i].events == 0))
			return &r->pts[i];
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void fb_stats(const run *r, double *mean, double *p50, double *p99)
{
	*mean = *p50 = *p99 = NAN;
	if (!r->n_fb)
		return;
	double *c = malloc(r->n_fb * sizeof *c);
	if (!c)
		return;
	memcpy(c, r->fb_us, r->n_fb * sizeof *c);
	qsort(c, r->n_fb, sizeof *c, cmp_double);
	double s = 0;
	for (size_t i = 0; i < r->n_fb; i++)
		s += c[i];
	*mean = s / (double)r->n_fb;
	*p50 = c[(r->n_fb - 1) / 2];
	*p99 = c[(size_t)((double)(r->n_fb - 1) * 0.99)];
	free(c);
}

static void fmt_num(char *buf, size_t cap, double v, int prec)
{
	if (isnan(v))
		snprintf(buf, cap, "n/a");
	else
		snprintf(buf, cap, "%.*f", prec, v);
}

static void fmt_pct(char *buf, size_t cap, double v)
{
	if (isnan(v))
		snprintf(buf, cap, "n/a");
	else
		snprintf(buf, cap, "%+.1f%%", v);
}

static const char *kilo(uint64_t e, char *buf, size_t cap)
{
	if (e >= 1000 && e % 1000 == 0)
		snprintf(buf, cap, "%lluk", (unsigned long long)(e / 1000));
	else
		snprintf(buf, cap, "%llu", (unsigned long long)e);
	return buf;
}

static const char *variant_name(lb_variant v)
{
	switch (v) {
	case LB_TOPIC:
		return "(a) topic confusion";
	case LB_QUALITY:
		return "(b) item quality";
	case LB_DEPS:
		return "(c) dependencies / section";
	}
	return "?";
}

/* ======================================================================
 * The experiment
 * ==================================================================== */

typedef struct setrun {
	lb_set set;
	lb_workload wa, wb;       /* wb: the shift's workload B (Fashion, Fiori) */
	lb_workload sa;           /* the shift's workload A: wa, on Fiori limited to one query region */
	uint8_t *good_b;          /* Fiori's B: other good items */
	uint8_t *qmask[2];        /* Fiori's A and B: the two query regions */
	char base_path[4200];
	double plain_h, plain_rh, plain_t, plain_rt;
	double plain_ph, plain_pt;  /* share of relevant hits */
	run *learn[4];            /* per learner (NULL: not run) */
	run *rnd[4];              /* random clicks */
	run *shift[LB_MAX_REPS][2]; /* per replicate: EWC on, off */
	unsigned n_reps;          /* replicates run */
	double load_s, truth_s, build_s, total_s;
	bool loaded;
	char *example;            /* Markdown of the Fiori example, or NULL */
} setrun;

static run *new_run(setrun *sr, const char *kind, int learner)
{
	run *r = calloc(1, sizeof *r);
	if (!r) {
		fprintf(stderr, "learn_bench: out of memory\n");
		exit(1);
	}
	snprintf(r->name, sizeof r->name, "%s/%s%s", sr->set.name, kind, learner >= 0 ? LEARNER_NAME[learner] : "");
	r->set = &sr->set;
	r->learner = learner;
	r->learners = learner >= 0 ? LEARNER_MASK[learner] : 0;
	return r;
}

static void free_run(run *r, const opts *o)
{
	if (!r)
		return;
	run_close(r);
	/* The run's copy of the collection is of no further use (the base
	 * collections stay cached). */
	char path[4200];
	run_path(path, sizeof path, r, o);
	unlink(path);
	free(r->fb_us);
	free(r->ndcg0);
	free(r);
}

/* Phase-1 checkpoints: a tenth of --events (1k), then every --every (2k)
 * up to --events (10k). */
static void phase1(run *r, const opts *o, const lb_workload *w)
{
	checkpoint(r, w, NULL);
	uint64_t first = o->events / 10 ? o->events / 10 : 1;
	train(r, w, first, o->every);
	checkpoint(r, w, NULL);
	for (uint64_t e = o->every; e <= o->events && !r->failed; e += o->every) {
		if (e <= first)
			continue;
		train(r, w, e, o->every);
		checkpoint(r, w, NULL);
	}
	if (r->events < o->events && !r->failed) {
		train(r, w, o->events, o->every);
		checkpoint(r, w, NULL);
	}
	print_trials(r);
}

static void phase2(run *r, const opts *o, const lb_workload *w)
{
	uint64_t step = (o->max_events - o->events) / 9;
	if (step < o->every)
		step = o->every;
	r->extended = true;
	for (uint64_t e = o->events + step; !r->failed; e += step) {
		if (e > o->max_events)
			e = o->max_events;
		train(r, w, e, o->every);
		checkpoint(r, w, NULL);
		if (e == o->max_events)
			break;
	}
	print_trials(r);
}

/* The 100-candidate re-ranking cost: pool = rerank_pool x k = 10 x 10, on
 * the run's own handle (its live re-ranker's representations were computed
 * by the last consolidation, as in a running service); rv_db_learn_eval's
 * rerank_us and reranks before and after the timed searches give the mean
 * of the pools between. Runs after everything else of the run. */
static void rerank100(run *r, const opts *o)
{
	(void)o;
	if (r->failed || !(r->learners & RV_LEARN_GNN))
		return;
	rv_learn_config c = RV_LEARN_CONFIG_INIT;
	rv_learn_eval before = RV_LEARN_EVAL_INIT;
	rv_status st = rv_db_learn_get_config(&c, r->db);
	if (st == RV_OK) {
		c.rerank_pool = 10;
		st = rv_db_learn_configure(r->db, &c);
	}
	if (st == RV_OK)
		st = rv_db_learn_eval(&before, r->db);
	if (st == RV_OK) {
		time_search(r, &r->search100_on_us, &r->search100_off_us);
		memset(&r->ev100, 0, sizeof r->ev100);
		r->ev100.size = sizeof r->ev100;
		st = rv_db_learn_eval(&r->ev100, r->db);
		r->have_ev100 = st == RV_OK && !r->failed;
	}
	if (r->have_ev100) {
		uint64_t n = r->ev100.reranks - before.reranks;
		r->ev100.rerank_us = n ? (r->ev100.rerank_us * (double)r->ev100.reranks -
					  before.rerank_us * (double)before.reranks) / (double)n
				       : 0.0;
	}
	if (st != RV_OK)
		fprintf(stderr, "learn_bench: %s: re-ranking a pool of 100: %s: %s\n", r->name, rv_status_str(st),
			rv_errmsg(r->db));
}

/* The Fiori example: a held-out query, its top 5 with and without
 * learning, good items marked. */
static char *fiori_example(run *r)
{
	const lb_set *s = r->set;
	if (!s->query_title || r->failed)
		return NULL;
	size_t cap = 8192, len = 0;
	char *md = malloc(cap);
	if (!md)
		return NULL;
	size_t q = s->n_train;
	uint32_t plain[LB_K], learned[LB_K];
	size_t np = 0, nl = 0;
	search_rows(r, s->queries + q * s->dim, RV_SEARCH_NO_LEARNING, LB_K, plain, &np);
	search_rows(r, s->queries + q * s->dim, 0, LB_K, learned, &nl);
	len += (size_t)snprintf(md + len, cap - len,
				"Held-out query: \"%s\" (good items marked **good**)\n\n"
				"| rank | no learning | after %llu events (%s) |\n|---|---|---|\n",
				s->query_title[q], (unsigned long long)r->events, LEARNER_NAME[r->learner]);
	for (size_t i = 0; i < 5 && len < cap; i++) {
		const char *a = i < np ? s->base_title[plain[i]] : "", *b = i < nl ? s->base_title[learned[i]] : "";
		len += (size_t)snprintf(md + len, cap - len, "| %zu | %.70s%s | %.70s%s |\n", i + 1, a,
					i < np && s->good[plain[i]] ? " **good**" : "", b,
					i < nl && s->good[learned[i]] ? " **good**" : "");
	}
	return md;
}

static double sqdist(const float *a, const float *b, size_t d)
{
	double s = 0;
	for (size_t i = 0; i < d; i++)
		s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	return s;
}

/* Masks of the two regions of the query pool (2-means, Lloyd from query 0
 * and the query farthest from it). Each region must hold train and
 * held-out queries. Returns 0, or -1 after a message. */
static int split_queries(uint8_t *mask[2], const lb_set *s)
{
	size_t d = s->dim, far = 0;
	double *c = calloc(2 * d, sizeof *c), *sum = calloc(2 * d, sizeof *sum);
	float *cf = malloc(2 * d * sizeof *cf);
	mask[0] = calloc(s->nq, 1);
	mask[1] = calloc(s->nq, 1);
	int rc = -1;
	if (!c || !sum || !cf || !mask[0] || !mask[1]) {
		fprintf(stderr, "learn_bench: out of memory for the query regions\n");
		goto done;
	}
	for (size_t q = 1; q < s->nq; q++)
		if (sqdist(s->queries + q * d, s->queries, d) > sqdist(s->queries + far * d, s->queries, d))
			far = q;
	for (size_t i = 0; i < d; i++) {
		cf[i] = s->queries[i];
		cf[d + i] = s->queries[far * d + i];
	}
	for (int it = 0; it < 20; it++) {
		size_t cnt[2] = { 0, 0 };
		memset(sum, 0, 2 * d * sizeof *sum);
		for (size_t q = 0; q < s->nq; q++) {
			const float *x = s->queries + q * d;
			int k = sqdist(x, cf + d, d) < sqdist(x, cf, d);
			mask[0][q] = k == 0;
			mask[1][q] = k == 1;
			cnt[k]++;
			for (size_t i = 0; i < d; i++)
				sum[k * d + i] += x[i];
		}
		for (int k = 0; k < 2; k++)
			for (size_t i = 0; i < d && cnt[k]; i++)
				cf[k * d + i] = (float)(sum[k * d + i] / (double)cnt[k]);
	}
	for (int k = 0; k < 2; k++) {
		size_t tr = 0, ho = 0;
		for (size_t q = 0; q < s->nq; q++)
			if (mask[k][q] && q < s->n_train)
				tr++;
			else if (mask[k][q])
				ho++;
		if (tr == 0 || ho == 0) {
			fprintf(stderr, "learn_bench: %s: query region %d has %zu train and %zu held-out queries\n", s->name,
				k, tr, ho);
			goto done;
		}
	}
	rc = 0;
done:
	free(c);
	free(sum);
	free(cf);
	return rc;
}

static int prepare_set(setrun *sr, const opts *o, const char *name)
{
	double t0 = lb_now();
	if (lb_load_set(&sr->set, name, &o->d))
		return -1;
	sr->loaded = true;
	sr->load_s = lb_now() - t0;
	lb_set *s = &sr->set;
	sr->wa.set = s;
	sr->wa.label = "A";
	if (s->variant == LB_TOPIC) {
		lb_topic_perm(sr->wa.perm, s, o->d.seed * 0x1001ull + 11, NULL);
		sr->wb.set = s;
		sr->wb.label = "B";
		lb_topic_perm(sr->wb.perm, s, o->d.seed * 0x1001ull + 22, sr->wa.perm);
	}
	if (s->variant == LB_QUALITY && o->shift) {
		/* B: as many good items as A, none of them good under A
		 * (taste changed: what was preferred no longer is). */
		size_t n_good = 0, n_other = 0;
		uint32_t *other = malloc(s->n * sizeof *other);
		sr->good_b = calloc(s->n, 1);
		if (!other || !sr->good_b) {
			free(other);
			fprintf(stderr, "learn_bench: out of memory for workload B\n");
			return -1;
		}
		for (size_t i = 0; i < s->n; i++) {
			n_good += s->good[i] != 0;
			if (!s->good[i])
				other[n_other++] = (uint32_t)i;
		}
		lb_rng rng = { o->d.seed * 0x1001ull + 33 };
		lb_shuffle(other, n_other, &rng);
		for (size_t i = 0; i < n_good && i < n_other; i++)
			sr->good_b[other[i]] = 1;
		free(other);
		sr->wb.set = s;
		sr->wb.label = "B";
		sr->wb.good = sr->good_b;
		/* A and B also ask different questions: the two regions of a
		 * 2-means split of the query pool. */
		if (split_queries(sr->qmask, s) != 0)
			return -1;
		sr->wb.qmask = sr->qmask[1];
	}
	t0 = lb_now();
	if (lb_truth(&sr->wa) || (sr->wb.set && lb_truth(&sr->wb))) {
		fprintf(stderr, "learn_bench: out of memory for the truth\n");
		return -1;
	}
	sr->truth_s = lb_now() - t0;
	/* The shift's A is wa (its truth shared), on Fiori one query region. */
	sr->sa = sr->wa;
	sr->sa.qmask = sr->qmask[0];
	printf("%s: %s, %zu items x %u, %zu train + %zu held-out queries (%zu dropped), loaded in %.1f s, truth in %.1f s\n",
	       s->name, variant_name(s->variant), s->n, s->dim, s->n_train, s->n_held, s->dropped_queries, sr->load_s,
	       sr->truth_s);
	if (s->variant == LB_TOPIC) {
		printf("  m (A):");
		for (int c = 0; c < s->n_classes; c++)
			printf(" %d->%d", c, sr->wa.perm[c]);
		printf("\n  m (B):");
		for (int c = 0; c < s->n_classes; c++)
			printf(" %d->%d", c, sr->wb.perm[c]);
		printf("\n");
	}
	t0 = lb_now();
	if (base_db(sr->base_path, sizeof sr->base_path, o, s))
		return -1;
	sr->build_s = lb_now() - t0;
	/* The plain ranking, for reference (every run's 0-event point must
	 * match it). */
	run tmp;
	memset(&tmp, 0, sizeof tmp);
	snprintf(tmp.name, sizeof tmp.name, "%s/plain", s->name);
	tmp.set = s;
	rv_open_opts oo = RV_OPEN_OPTS_INIT;
	oo.threads = 1;
	rv_status st = rv_db_open(&tmp.db, sr->base_path, &oo);
	if (st != RV_OK) {
		run_fail(&tmp, "rv_db_open", st);
		run_close(&tmp);
		return -1;
	}
	eval_range(&tmp, &sr->wa, s->n_train, s->nq, RV_SEARCH_NO_LEARNING, &sr->plain_h, &sr->plain_rh, &sr->plain_ph,
		   NULL);
	eval_range(&tmp, &sr->wa, 0, n_eval_train(s), RV_SEARCH_NO_LEARNING, &sr->plain_t, &sr->plain_rt, &sr->plain_pt,
		   NULL);
	run_close(&tmp);
	printf("  no learning: held-out NDCG@10 %.4f recall@10 %.4f rel %.3f, seen NDCG@10 %.4f recall@10 %.4f rel %.3f\n",
	       sr->plain_h, sr->plain_rh, sr->plain_ph, sr->plain_t, sr->plain_rt, sr->plain_pt);
	return tmp.failed ? -1 : 0;
}

static void run_set_phase1(setrun *sr, const opts *o)
{
	lb_set *s = &sr->set;
	for (int l = 0; l < 4; l++) {
		if (!o->learner_on[l])
			continue;
		run *r = sr->learn[l] = new_run(sr, "", l);
		printf("%s: learning with %s\n", s->name, LEARNER_NAME[l]);
		if (run_open(r, o, sr->base_path) == 0) {
			phase1(r, o, &sr->wa);
			after_phase1(r, o, &sr->wa);
		}
		if (s->variant == LB_QUALITY && !r->failed && l == 3)
			sr->example = fiori_example(r);
	}
	if (o->random) {
		for (int l = 0; l < 4; l++) {
			if (!o->learner_on[l])
				continue;
			run *r = sr->rnd[l] = new_run(sr, "random-", l);
			r->random_mode = true;
			printf("%s: random clicks with %s\n", s->name, LEARNER_NAME[l]);
			if (run_open(r, o, sr->base_path) == 0) {
				phase1(r, o, &sr->wa);
				r->train_s_phase1 = r->train_s;
			}
			run_close(r);
		}
	}
	/* Fashion's shift costs about 5 min a replicate: one, unless
	 * --shift-reps asks for more. */
	sr->n_reps = o->shift && sr->wb.set ? (s->variant == LB_QUALITY || o->reps_given ? o->shift_reps : 1) : 0;
	for (unsigned k = 0; k < sr->n_reps; k++) {
		for (int e = 0; e < 2; e++) {
			int l = o->shift_learner;
			char kind[48];
			snprintf(kind, sizeof kind, "shift%u-%s-", k + 1, e == 0 ? "ewc" : "noewc");
			run *r = sr->shift[k][e] = new_run(sr, kind, l);
			r->rep = k;
			r->ewc_set = e == 1;
			r->ewc_lambda = 0;
			printf("%s: shift A -> B -> A with %s, %s, replicate %u\n", s->name, LEARNER_NAME[l],
			       e == 0 ? "EWC++ default" : "EWC++ off", k + 1);
			if (run_open(r, o, sr->base_path) != 0)
				continue;
			checkpoint(r, &sr->sa, &sr->wb);
			/* Checkpoints every --every events and at the phase ends;
			 * each segment lies inside one phase. */
			uint64_t e1 = o->events, e2 = 2 * o->events, e3 = 2 * o->events + o->events / 5;
			for (uint64_t t = o->every; !r->failed; t += o->every) {
				uint64_t until = t;
				if (r->events < e1 && until > e1)
					until = e1;
				else if (r->events < e2 && until > e2)
					until = e2;
				else if (until > e3)
					until = e3;
				t = until;
				train(r, until <= e1 || until > e2 ? &sr->sa : &sr->wb, until, o->every);
				checkpoint(r, &sr->sa, &sr->wb);
				if (until == e3)
					break;
			}
			r->train_s_phase1 = r->train_s;
			run_close(r);
		}
	}
}

/* ======================================================================
 * Report
 * ==================================================================== */

static void md_learning_table(FILE *f, const setrun *sr, const opts *o, bool held)
{
	uint64_t cols[4] = { 0, o->events / 10, o->events, o->max_events };
	int nc = o->max_events > o->events ? 4 : 3;
	char k1[24], b[32];
	fprintf(f, "| learner |");
	for (int c = 0; c < nc; c++)
		fprintf(f, " NDCG@10 %s |", kilo(cols[c], k1, sizeof k1));
	fprintf(f, " change at %s (± 2 SE) |", kilo(o->events, k1, sizeof k1));
	for (int c = 0; c < nc; c++)
		fprintf(f, " recall@10 %s |", kilo(cols[c], k1, sizeof k1));
	fprintf(f, " relevant in top 10: 0 -> %s |", kilo(o->events, k1, sizeof k1));
	fprintf(f, " active version at %s |", kilo(o->events, k1, sizeof k1));
	fprintf(f, "\n|---|");
	for (int c = 0; c < 2 * nc + 3; c++)
		fprintf(f, "---:|");
	fprintf(f, "\n");
	for (int l = 0; l < 4; l++) {
		const run *r = sr->learn[l];
		fprintf(f, "| %s |", LEARNER_NAME[l]);
		if (!r) {
			fprintf(f, " not run |");
			for (int c = 0; c < 2 * nc + 2; c++)
				fprintf(f, " |");
			fprintf(f, "\n");
			continue;
		}
		for (int metric = 0; metric < 2; metric++) {
			for (int c = 0; c < nc; c++) {
				const point *p = point_at(r, cols[c]);
				if (c == 3 && !r->extended) {
					fprintf(f, " not run |");
					continue;
				}
				double v = !p ? NAN : metric == 0 ? (held ? p->ndcg_h : p->ndcg_t) : (held ? p->rec_h : p->rec_t);
				fmt_num(b, sizeof b, v, 4);
				fprintf(f, " %s |", b);
			}
			if (metric == 0) {
				const point *p0 = point_at(r, 0), *p1 = point_at(r, o->events);
				double base = p0 ? (held ? p0->ndcg_h : p0->ndcg_t) : NAN;
				fmt_pct(b, sizeof b, p0 && p1 ? pct(held ? p1->ndcg_h : p1->ndcg_t, base) : NAN);
				double se = p1 ? (held ? p1->se_h : p1->se_t) : NAN;
				if (!isnan(se) && base > 0)
					fprintf(f, " %s ± %.1f%% |", b, 200.0 * se / base);
				else
					fprintf(f, " %s |", b);
			}
		}
		const point *p0 = point_at(r, 0), *p1 = point_at(r, o->events);
		if (p0 && p1)
			fprintf(f, " %.1f%% -> %.1f%% |", 100 * (held ? p0->rel_h : p0->rel_t), 100 * (held ? p1->rel_h : p1->rel_t));
		else
			fprintf(f, " n/a |");
		char vl[32];
		learners_str(vl, sizeof vl, p1 ? p1->version : 0, p1 ? p1->version_learners : 0);
		fprintf(f, " %s |", vl);
		fprintf(f, "\n");
		if (r->failed)
			fprintf(f, "\nFailed: `%s`\n\n", r->err);
	}
}

static void write_curves(const setrun *sr, const opts *o)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/curve-%s.tsv", o->out, sr->set.name);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "learn_bench: cannot write %s: %s\n", path, strerror(errno));
		return;
	}
	/* One block per series (gnuplot `index`): MICRO, BASE, GNN, ALL,
	 * random ALL, random MICRO; empty series get a single NaN row. */
	fprintf(f, "# %s %s: events, held-out NDCG@10, held-out recall@10, seen NDCG@10, seen recall@10, "
		"held-out and seen share of relevant hits; plain %.6f %.6f\n",
		sr->set.name, variant_name(sr->set.variant), sr->plain_h, sr->plain_t);
	const run *series[6] = { sr->learn[0], sr->learn[1], sr->learn[2], sr->learn[3], sr->rnd[3], sr->rnd[0] };
	const char *names[6] = { "MICRO", "BASE", "GNN", "ALL", "ALL, random clicks", "MICRO, random clicks" };
	for (int i = 0; i < 6; i++) {
		fprintf(f, "# %s\n", names[i]);
		const run *r = series[i];
		if (!r || r->n_pts == 0)
			fprintf(f, "1 NaN NaN NaN NaN NaN NaN\n");
		for (size_t j = 0; r && j < r->n_pts; j++)
			fprintf(f, "%llu %.6f %.6f %.6f %.6f %.6f %.6f\n", (unsigned long long)r->pts[j].events,
				r->pts[j].ndcg_h, r->pts[j].rec_h, r->pts[j].ndcg_t, r->pts[j].rec_t, r->pts[j].rel_h,
				r->pts[j].rel_t);
		fprintf(f, "\n\n");
	}
	fclose(f);
}

static void write_shift_tsv(const setrun *sr, const opts *o)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/shift-%s.tsv", o->out, sr->set.name);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "learn_bench: cannot write %s: %s\n", path, strerror(errno));
		return;
	}
	char gp[4200];
	snprintf(gp, sizeof gp, "%s/plot-params.gp", o->out);
	FILE *g = fopen(gp, "w");
	if (g) {
		fprintf(g, "# phase ends of the shift experiment, for bench/learn/plots.gp\ne1 = %llu; e2 = %llu; e3 = %llu\n",
			(unsigned long long)o->events, (unsigned long long)(2 * o->events),
			(unsigned long long)(2 * o->events + o->events / 5));
		fclose(g);
	}
	fprintf(f, "# shift on %s: events, held-out NDCG@10 under A, under B; phases end at %llu %llu %llu\n",
		sr->set.name, (unsigned long long)o->events, (unsigned long long)(2 * o->events),
		(unsigned long long)(2 * o->events + o->events / 5));
	for (int e = 0; e < 2; e++) {
		fprintf(f, "# %s\n", e == 0 ? "EWC++ default" : "EWC++ off");
		const run *r = sr->shift[0][e];
		if (!r || r->n_pts == 0)
			fprintf(f, "0 NaN NaN\n");
		for (size_t j = 0; r && j < r->n_pts; j++)
			fprintf(f, "%llu %.6f %.6f\n", (unsigned long long)r->pts[j].events, r->pts[j].ndcg_h,
				r->pts[j].ndcg_b);
		fprintf(f, "\n\n");
	}
	fclose(f);
}

typedef struct targets {
	double worst_gain;           /* min over variants of ALL's held-out change at --events */
	const char *worst_gain_set;
	double worst_random;         /* min over sets/learners of random-click change */
	double kept_ewc, kept_noewc, kept_back_ewc, kept_back_noewc;
	double micro_us_384;         /* rv_db_feedback with MICRO at d=384 (Fiori) */
	double ev_micro_us_384;      /* rv_db_learn_eval's MicroLoRA step there */
	double rerank100_us;
	double worst_ratio;
	const char *worst_ratio_name;
	double kept_gain_a;          /* the A phase's gain on the set the kept figures come from */
	const char *kept_set;
	double kept_se_ewc, kept_se_noewc; /* standard errors of the kept means over replicates */
} targets;

static void shift_numbers(const run *r, const opts *o, double *kept, double *kept_back, double *gain_a,
			  double *gain_b)
{
	*kept = *kept_back = *gain_a = *gain_b = NAN;
	if (!r)
		return;
	const point *p0 = point_at(r, 0), *pa = point_at(r, o->events), *pb = point_at(r, 2 * o->events),
		    *pc = point_at(r, 2 * o->events + o->events / 5);
	if (!p0 || !pa)
		return;
	*gain_a = pa->ndcg_h - p0->ndcg_h;
	/* A share of a gain within noise means nothing: kept needs a gain of
	 * more than two standard errors. */
	bool real = *gain_a > 2 * pa->se_h;
	if (pb) {
		*kept = real ? (pb->ndcg_h - p0->ndcg_h) / *gain_a * 100.0 : NAN;
		/* B's gain during its own phase (A's phase moved B's ranking too). */
		*gain_b = pb->ndcg_b - pa->ndcg_b;
	}
	if (pc)
		*kept_back = real ? (pc->ndcg_h - p0->ndcg_h) / *gain_a * 100.0 : NAN;
}

static void write_report(setrun *srs, size_t nsets, const opts *o, double total_s, const char *ext_note)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/results.md", o->out);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "learn_bench: cannot write %s: %s\n", path, strerror(errno));
		return;
	}
	char b1[96], b2[96], b3[32], b4[32], b5[32], b6[32], k1[24], k2[24];
	targets t = { INFINITY, NULL, INFINITY, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0, NULL, 0, NULL, NAN, NAN };

	fprintf(f, "<!-- written by bench/learn/learn_bench (make bench-learn); do not edit -->\n\n");
	fprintf(f, "ruvector %s, SIMD %s (%s). Events are rv_db_feedback calls; "
		"consolidation every %llu events and at each checkpoint (BASE, GNN, ALL). "
		"Seen queries: the first %d train queries; held-out: queries never issued during training.\n\n",
		RV_VERSION_STRING, rv_simd_name(), rv_simd_features(),
		(unsigned long long)o->every, EVAL_TRAIN_MAX);

	fprintf(f, "### Data sets\n\n| set | hidden relevance | items | dim | train queries | held-out queries | "
		"held-out NDCG@10 / recall@10, no learning | seen NDCG@10 / recall@10, no learning | "
		"relevant in top 10, no learning |\n"
		"|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < nsets; i++) {
		const setrun *sr = &srs[i];
		if (!sr->loaded)
			continue;
		fprintf(f, "| %s | %s | %zu | %u | %zu | %zu | %.4f / %.4f | %.4f / %.4f | %.1f%% |\n", sr->set.name,
			variant_name(sr->set.variant), sr->set.n, sr->set.dim, sr->set.n_train, sr->set.n_held,
			sr->plain_h, sr->plain_rh, sr->plain_t, sr->plain_rt, 100 * sr->plain_ph);
	}
	fprintf(f, "\n");

	fprintf(f, "### Learning\n\n%s\n\n", ext_note);
	for (size_t i = 0; i < nsets; i++) {
		setrun *sr = &srs[i];
		if (!sr->loaded)
			continue;
		fprintf(f, "#### %s, %s: held-out queries\n\n", sr->set.name, variant_name(sr->set.variant));
		md_learning_table(f, sr, o, true);
		fprintf(f, "\n#### %s, %s: seen queries\n\n", sr->set.name, variant_name(sr->set.variant));
		md_learning_table(f, sr, o, false);
		fprintf(f, "\n");
		const run *all = sr->learn[3];
		if (all) {
			const point *p0 = point_at(all, 0), *p1 = point_at(all, o->events);
			double g = p0 && p1 ? pct(p1->ndcg_h, p0->ndcg_h) : NAN;
			if (isnan(g) || g < t.worst_gain) {
				t.worst_gain = isnan(g) ? -INFINITY : g;
				t.worst_gain_set = sr->set.name;
			}
		}
		if (sr->example)
			fprintf(f, "Example (%s):\n\n%s\n", sr->set.name, sr->example);
	}

	if (o->random) {
		fprintf(f, "### Random clicks\n\nEach impression gets one event on a uniformly drawn shown item "
			"with a reward uniform in [-1, 1].\n\n"
			"| set | learner | held-out NDCG@10 0 -> %s | change (± 2 SE) | seen NDCG@10 0 -> %s | change (± 2 SE) | "
			"held-out relevant in top 10 |\n"
			"|---|---|---:|---:|---:|---:|---:|\n", kilo(o->events, k1, sizeof k1), kilo(o->events, k2, sizeof k2));
		for (size_t i = 0; i < nsets; i++)
			for (int l = 0; l < 4; l++) {
				const run *r = srs[i].rnd[l];
				if (!r)
					continue;
				const point *p0 = point_at(r, 0), *p1 = point_at(r, o->events);
				if (!p0 || !p1) {
					fprintf(f, "| %s | %s | failed: %s | | | | |\n", srs[i].set.name, LEARNER_NAME[l], r->err);
					t.worst_random = -INFINITY;
					continue;
				}
				double ch = pct(p1->ndcg_h, p0->ndcg_h), ct = pct(p1->ndcg_t, p0->ndcg_t);
				fmt_pct(b3, sizeof b3, ch);
				fmt_pct(b4, sizeof b4, ct);
				snprintf(b1, sizeof b1, "%s ± %.1f%%", b3, p0->ndcg_h > 0 ? 200.0 * p1->se_h / p0->ndcg_h : NAN);
				snprintf(b2, sizeof b2, "%s ± %.1f%%", b4, p0->ndcg_t > 0 ? 200.0 * p1->se_t / p0->ndcg_t : NAN);
				fprintf(f, "| %s | %s | %.4f -> %.4f | %s | %.4f -> %.4f | %s | %.1f%% -> %.1f%% |\n",
					srs[i].set.name, LEARNER_NAME[l], p0->ndcg_h, p1->ndcg_h, b1, p0->ndcg_t, p1->ndcg_t, b2,
					100 * p0->rel_h, 100 * p1->rel_h);
				if (ch < t.worst_random)
					t.worst_random = ch;
				if (ct < t.worst_random)
					t.worst_random = ct;
			}
		fprintf(f, "\n");
	}

	for (size_t i = 0; i < nsets && o->shift; i++) {
		setrun *sr = &srs[i];
		if (sr->n_reps == 0 || !sr->shift[0][0])
			continue;
		write_shift_tsv(sr, o);
		fprintf(f, "### Workload shift (%s)\n\n"
			"%s %s events of A, %s of B, then %llu of A "
			"again; learner %s. Kept = (held-out NDCG@10 under A now - before any event) / (gain after the "
			"A phase). %u replicate%s: the same workloads, other users (query and click streams).\n\n"
			"| replicate | EWC++ | A: before | after A | after B | kept after B | after A again | kept | "
			"NDCG under B: after A -> after B | active version after A / B / A again |\n"
			"|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
			sr->set.name,
			sr->set.variant == LB_TOPIC ? "A: class c wants m1(c); B: class c wants m2(c) != m1(c)."
						    : "A: the set's good items; B: as many others, none good under A.",
			kilo(o->events, k1, sizeof k1), kilo(o->events, k2, sizeof k2),
			(unsigned long long)(o->events / 5), LEARNER_NAME[sr->shift[0][0]->learner], sr->n_reps,
			sr->n_reps == 1 ? "" : "s");
		rv_learn_config dflt = RV_LEARN_CONFIG_INIT;
		char lam[48];
		snprintf(lam, sizeof lam, "default (lambda %g)", (double)dflt.ewc_lambda);
		/* Per setting: sums over the replicates whose A phase gained. */
		double sk[2] = { 0, 0 }, sk2[2] = { 0, 0 }, sb[2] = { 0, 0 }, sb2[2] = { 0, 0 }, sga = 0;
		unsigned nk[2] = { 0, 0 };
		for (unsigned k = 0; k < sr->n_reps; k++)
			for (int e = 0; e < 2; e++) {
				const run *r = sr->shift[k][e];
				if (!r)
					continue;
				double kept, back, ga, gb;
				shift_numbers(r, o, &kept, &back, &ga, &gb);
				const point *p0 = point_at(r, 0), *pa = point_at(r, o->events),
					    *pb = point_at(r, 2 * o->events), *pc = point_at(r, 2 * o->events + o->events / 5);
				fmt_num(b1, sizeof b1, p0 ? p0->ndcg_h : NAN, 4);
				fmt_num(b2, sizeof b2, pa ? pa->ndcg_h : NAN, 4);
				fmt_num(b3, sizeof b3, pb ? pb->ndcg_h : NAN, 4);
				fmt_num(b4, sizeof b4, pc ? pc->ndcg_h : NAN, 4);
				fmt_num(b5, sizeof b5, kept, 1);
				fmt_num(b6, sizeof b6, back, 1);
				char gbs[64];
				if (pa && pb)
					snprintf(gbs, sizeof gbs, "%.4f -> %.4f (%+.4f)", pa->ndcg_b, pb->ndcg_b, gb);
				else
					snprintf(gbs, sizeof gbs, "n/a");
				char va[32], vb[32], vc[32];
				learners_str(va, sizeof va, pa ? pa->version : 0, pa ? pa->version_learners : 0);
				learners_str(vb, sizeof vb, pb ? pb->version : 0, pb ? pb->version_learners : 0);
				learners_str(vc, sizeof vc, pc ? pc->version : 0, pc ? pc->version_learners : 0);
				fprintf(f, "| %u | %s | %s | %s | %s | %s%s | %s | %s%s | %s | %s / %s / %s |\n", k + 1,
					e == 0 ? lam : "off (lambda 0)", b1, b2, b3, b5, isnan(kept) ? "" : "%", b4, b6,
					isnan(back) ? "" : "%", gbs, va, vb, vc);
				if (r->failed)
					fprintf(f, "\nFailed: `%s`\n\n", r->err);
				if (!isnan(kept) && !isnan(back)) {
					sk[e] += kept;
					sk2[e] += kept * kept;
					sb[e] += back;
					sb2[e] += back * back;
					nk[e]++;
					if (e == 0)
						sga += ga;
				}
			}
		double mk[2], sek[2], mb[2], seb[2];
		for (int e = 0; e < 2; e++) {
			mk[e] = nk[e] ? sk[e] / nk[e] : NAN;
			mb[e] = nk[e] ? sb[e] / nk[e] : NAN;
			sek[e] = nk[e] > 1 ? sqrt(fmax(0, (sk2[e] - nk[e] * mk[e] * mk[e]) / (nk[e] - 1)) / nk[e]) : NAN;
			seb[e] = nk[e] > 1 ? sqrt(fmax(0, (sb2[e] - nk[e] * mb[e] * mb[e]) / (nk[e] - 1)) / nk[e]) : NAN;
		}
		/* One replicate has no standard error: "n/a". */
		char se1[32], se2[32], se3[32], se4[32];
		fmt_num(se1, sizeof se1, 2 * sek[0], 1);
		fmt_num(se2, sizeof se2, 2 * sek[1], 1);
		fmt_num(se3, sizeof se3, 2 * seb[0], 1);
		fmt_num(se4, sizeof se4, 2 * seb[1], 1);
		fprintf(f, "\nMean over the replicates whose A phase gained more than 2 SE (%u with EWC++, %u without): "
			"kept after B %.1f%% ± %s with EWC++, %.1f%% ± %s without; after A again %.1f%% ± %s "
			"and %.1f%% ± %s (± 2 SE, in points).\n\n",
			nk[0], nk[1], mk[0], se1, mk[1], se2, mb[0], se3, mb[1], se4);
		/* The targets row shows the set whose A phase gained most (with
		 * EWC++ on, mean over the replicates). */
		double ga_mean = nk[0] ? sga / nk[0] : NAN;
		if (nk[0] && nk[1] && (isnan(t.kept_ewc) || ga_mean > t.kept_gain_a)) {
			t.kept_ewc = mk[0];
			t.kept_noewc = mk[1];
			t.kept_back_ewc = mb[0];
			t.kept_back_noewc = mb[1];
			t.kept_se_ewc = sek[0];
			t.kept_se_noewc = sek[1];
			t.kept_gain_a = ga_mean;
			t.kept_set = sr->set.name;
		}
	}

	fprintf(f, "### Latency\n\nOne core of a shared 2-core machine, single-threaded calls. Feedback: every "
		"rv_db_feedback of the run up to %s events. Search: k = 10 over the held-out queries, at least %d passes each way and 2000 searches, alternating, "
		"with learning vs RV_SEARCH_NO_LEARNING on the same handle after %s events, mean CPU time of the searching thread. rv_db_learn_eval: the "
		"library's own figures (MicroLoRA step, GNN re-ranking of one pool of rerank_pool x k = 50 "
		"candidates) and its NDCG@10 of the rewarded items.\n\n"
		"| set | dim | learner | feedback mean us | p50 us | p99 us | search off us | on us | on/off | "
		"consolidation ms | eval: micro us | rerank us | eval NDCG plain -> learned |\n"
		"|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
		kilo(o->max_events, k1, sizeof k1), LATENCY_ROUNDS, kilo(o->events, k2, sizeof k2));
	for (size_t i = 0; i < nsets; i++)
		for (int l = 0; l < 4; l++) {
			const run *r = srs[i].learn[l];
			if (!r)
				continue;
			double mean, p50, p99;
			fb_stats(r, &mean, &p50, &p99);
			fmt_num(b1, sizeof b1, mean, 1);
			char p50s[32];
			fmt_num(p50s, sizeof p50s, p50, 1);
			fmt_num(b2, sizeof b2, p99, 1);
			double ratio = r->have_search && r->search_off_us > 0 ? r->search_on_us / r->search_off_us : NAN;
			fmt_num(b3, sizeof b3, ratio, 2);
			fmt_num(b4, sizeof b4, r->n_consolidate ? r->consolidate_s / r->n_consolidate * 1e3 : NAN, 1);
			fmt_num(b5, sizeof b5, r->have_ev ? r->ev.micro_us : NAN, 1);
			fmt_num(b6, sizeof b6, r->have_ev ? r->ev.rerank_us : NAN, 1);
			char evs[64];
			if (r->have_ev)
				snprintf(evs, sizeof evs, "%.4f -> %.4f", r->ev.ndcg_plain, r->ev.ndcg_learned);
			else
				snprintf(evs, sizeof evs, "n/a");
			fprintf(f, "| %s | %u | %s | %s | %s | %s | %.1f | %.1f | %s | %s | %s | %s | %s |\n", srs[i].set.name,
				srs[i].set.dim, LEARNER_NAME[l], b1, p50s, b2, r->search_off_us, r->search_on_us, b3, b4, b5, b6,
				evs);
			if (!isnan(ratio) && (t.worst_ratio_name == NULL || ratio > t.worst_ratio)) {
				t.worst_ratio = ratio;
				t.worst_ratio_name = r->name;
			}
			if (srs[i].set.dim == 384 && l == 0) {
				t.micro_us_384 = mean;
				t.ev_micro_us_384 = r->have_ev ? r->ev.micro_us : NAN;
			}
			/* rerank_us 0: the active version has no re-ranker. */
			if (r->have_ev100 && r->ev100.rerank_us > 0 &&
			    (isnan(t.rerank100_us) || r->ev100.rerank_us > t.rerank100_us))
				t.rerank100_us = r->ev100.rerank_us;
		}
	fprintf(f, "\n");
	bool any100 = false;
	for (size_t i = 0; i < nsets; i++)
		for (int l = 2; l < 4; l++) {
			const run *r = srs[i].learn[l];
			if (!r || !r->have_ev100)
				continue;
			if (!any100)
				fprintf(f, "Re-ranking a pool of 100 (rerank_pool = 10, k = 10), at the end of the GNN and "
					"ALL runs:\n\n"
					"| set | dim | learner | active version | rv_db_learn_eval rerank us | search off us | "
					"on us | on/off |\n|---|---:|---|---|---:|---:|---:|---:|\n");
			any100 = true;
			const point *pl = r->n_pts ? &r->pts[r->n_pts - 1] : NULL;
			char vl[32];
			learners_str(vl, sizeof vl, pl ? pl->version : 0, pl ? pl->version_learners : 0);
			char us[64];
			if (r->ev100.rerank_us > 0)
				snprintf(us, sizeof us, "%.1f", r->ev100.rerank_us);
			else
				snprintf(us, sizeof us, "none (no re-ranker)");
			fprintf(f, "| %s | %u | %s | %s | %s | %.1f | %.1f | %.2f |\n", srs[i].set.name, srs[i].set.dim,
				LEARNER_NAME[l], vl, us, r->search100_off_us, r->search100_on_us,
				r->search100_off_us > 0 ? r->search100_on_us / r->search100_off_us : NAN);
		}
	if (any100)
		fprintf(f, "\n");
	bool any_reopen = false;
	for (size_t i = 0; i < nsets; i++) {
		const run *r = srs[i].learn[3];
		if (!r || !r->have_reopen)
			continue;
		if (!any_reopen)
			fprintf(f, "Commit, close and reopen after %s events (ALL): held-out NDCG@10 before -> after: ",
				kilo(o->events, k1, sizeof k1));
		fprintf(f, "%s%s %.4f -> %.4f", any_reopen ? "; " : "", srs[i].set.name, r->reopen_before,
			r->reopen_after);
		any_reopen = true;
	}
	if (any_reopen)
		fprintf(f, ".\n\n");

	/* Targets, as stated in docs/LEARNING.md. */
	fprintf(f, "### Targets\n\n| target | measured | met |\n|---|---|---|\n");
	const char *yes = "yes", *no = "**no**", *na = "n/a";
	fmt_pct(b1, sizeof b1, t.worst_gain);
	fprintf(f, "| held-out NDCG@10 after %s events >= +20%% over no learning, every variant (%s) | worst: %s (%s) | %s |\n",
		kilo(o->events, k1, sizeof k1), LEARNER_NAME[3], b1,
		t.worst_gain_set ? t.worst_gain_set : "-",
		t.worst_gain_set ? (t.worst_gain >= 20.0 ? yes : no) : na);
	fmt_pct(b1, sizeof b1, isinf(t.worst_random) && t.worst_random > 0 ? NAN : t.worst_random);
	fprintf(f, "| random clicks: no worse than -1%% | worst: %s | %s |\n", b1,
		isinf(t.worst_random) && t.worst_random > 0 ? na : t.worst_random >= -1.0 ? yes : no);
	fmt_num(b1, sizeof b1, t.kept_ewc, 1);
	fmt_num(b2, sizeof b2, t.kept_noewc, 1);
	fmt_num(b3, sizeof b3, t.kept_back_ewc, 1);
	fmt_num(b4, sizeof b4, t.kept_back_noewc, 1);
	/* Clearly more: the difference of the two means beyond 2 standard
	 * errors (replicates are independent; one replicate has no SE, and
	 * then 10 points stand in). */
	double dse = sqrt(t.kept_se_ewc * t.kept_se_ewc + t.kept_se_noewc * t.kept_se_noewc);
	bool clearly = isnan(dse) ? t.kept_ewc >= t.kept_noewc + 10.0 : t.kept_ewc - t.kept_noewc > 2 * dse;
	fmt_num(b5, sizeof b5, 2 * t.kept_se_ewc, 1);
	fmt_num(b6, sizeof b6, 2 * t.kept_se_noewc, 1);
	fprintf(f, "| shift: >= 70%% of A's gain kept with EWC++ after B, clearly more than without | mean over "
		"replicates: with %s%% ± %s%%, without %s%% ± %s%% (after A again: %s%% / %s%%)%s%s%s | %s |\n", b1, b5,
		b2, b6, b3, b4, t.kept_set ? "; set " : "", t.kept_set ? t.kept_set : "",
		isnan(t.kept_ewc) || isnan(t.kept_noewc) ? "; n/a: no gain beyond 2 SE after the A phase" : "",
		isnan(t.kept_ewc) || isnan(t.kept_noewc) ? na : t.kept_ewc >= 70.0 && clearly ? yes : no);
	fmt_num(b1, sizeof b1, t.micro_us_384, 1);
	fmt_num(b2, sizeof b2, t.ev_micro_us_384, 1);
	fprintf(f, "| MicroLoRA update < 50 us at d = 384 | rv_db_feedback %s us mean (MICRO, fiori); "
		"rv_db_learn_eval step %s us | %s |\n", b1, b2,
		isnan(t.micro_us_384) ? na : t.micro_us_384 < 50.0 ? yes : no);
	fmt_num(b1, sizeof b1, t.rerank100_us, 1);
	fprintf(f, "| re-ranking 100 candidates < 200 us | %s us (worst of the GNN and ALL runs with a re-ranker) | %s |\n", b1,
		isnan(t.rerank100_us) ? na : t.rerank100_us < 200.0 ? yes : no);
	fmt_num(b1, sizeof b1, t.worst_ratio_name ? t.worst_ratio : NAN, 2);
	fprintf(f, "| search with learning <= 1.3x without | worst %sx (%s) | %s |\n", b1,
		t.worst_ratio_name ? t.worst_ratio_name : "-",
		!t.worst_ratio_name ? na : t.worst_ratio <= 1.3 ? yes : no);
	fprintf(f, "\n");

	fprintf(f, "### Run time\n\n| set | load | truth | collection | learning runs | random | shift |\n"
		"|---|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < nsets; i++) {
		const setrun *sr = &srs[i];
		if (!sr->loaded)
			continue;
		double lr = 0, rr = 0, sh = 0;
		for (int l = 0; l < 4; l++) {
			if (sr->learn[l])
				lr += sr->learn[l]->train_s + sr->learn[l]->eval_s + sr->learn[l]->commit_s;
			if (sr->rnd[l])
				rr += sr->rnd[l]->train_s + sr->rnd[l]->eval_s;
		}
		for (unsigned k = 0; k < sr->n_reps; k++)
			for (int e = 0; e < 2; e++)
				if (sr->shift[k][e])
					sh += sr->shift[k][e]->train_s + sr->shift[k][e]->eval_s;
		fprintf(f, "| %s | %.1f s | %.1f s | %.1f s | %.1f s | %.1f s | %.1f s |\n", sr->set.name, sr->load_s,
			sr->truth_s, sr->build_s, lr, rr, sh);
	}
	fprintf(f, "\nTotal: %.1f s (%.1f min).\n", total_s, total_s / 60.0);
	fclose(f);
	printf("wrote %s\n", path);
}

/* ======================================================================
 * main
 * ==================================================================== */

static int parse_u64(const char *s, const char *name, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s ? s : "", &end, 10);
	if (!s || !*s || *end || errno || v < lo || v > hi) {
		fprintf(stderr, "learn_bench: %s: '%s' is not a number in %llu..%llu\n", name, s ? s : "",
			(unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	*out = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: learn_bench [--data DIR] [--out DIR] [--work DIR] [--sets fashion,fiori,debian]\n"
		"                   [--learners micro,base,gnn,all] [--fashion-n N] [--events N]\n"
		"                   [--max-events N] [--every N] [--budget-min M] [--seed S] [--quick]\n"
		"                   [--no-random] [--no-shift] [--shift-learner all] [--shift-reps 4] [--no-away]\n"
		"                   [--no-category]\n");
}

static int mkdir_p(const char *dir)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", dir);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(buf, 0777);
			*p = '/';
		}
	if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "learn_bench: cannot create %s: %s\n", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double t_start = lb_now();
	opts o;
	memset(&o, 0, sizeof o);
	o.data = RV_DATA_DIR;
	o.out = "docs/learning";
	snprintf(o.sets, sizeof o.sets, "fashion,fiori,debian");
	for (int l = 0; l < 4; l++)
		o.learner_on[l] = true;
	o.d.fashion_n = 20000;
	o.d.fashion_train = 1000;
	o.d.fashion_held = 500;
	o.d.fiori_train = 100;
	o.d.fiori_held = 100;
	o.d.debian_train = 500;
	o.d.debian_held = 500;
	o.d.seed = 1;
	o.events = 10000;
	o.max_events = 100000;
	o.every = 2000;
	o.budget_s = 15 * 60;
	o.random = o.shift = true;
	o.shift_learner = 3;
	o.shift_reps = 4;
	char work_buf[4200] = "";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t x;
		if (strcmp(a, "--quick") == 0) {
			o.d.fashion_n = 5000;
			o.d.fashion_train = 200;
			o.d.fashion_held = 200;
			o.d.debian_train = 100;
			o.d.debian_held = 100;
			o.events = 2000;
			o.max_events = 4000;
			o.every = 500;
			continue;
		}
		if (strcmp(a, "--no-random") == 0) {
			o.random = false;
			continue;
		}
		if (strcmp(a, "--no-shift") == 0) {
			o.shift = false;
			continue;
		}
		if (strcmp(a, "--no-away") == 0) {
			o.no_away = true;
			continue;
		}
		if (strcmp(a, "--no-category") == 0) {
			o.no_category = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
			return 0;
		}
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (strcmp(a, "--data") == 0)
			o.data = v;
		else if (strcmp(a, "--out") == 0)
			o.out = v;
		else if (strcmp(a, "--work") == 0)
			o.work = v;
		else if (strcmp(a, "--sets") == 0)
			snprintf(o.sets, sizeof o.sets, "%s", v);
		else if (strcmp(a, "--shift-reps") == 0) {
			if (parse_u64(v, a, 1, LB_MAX_REPS, &x))
				return 2;
			o.shift_reps = (unsigned)x;
			o.reps_given = true;
		} else if (strcmp(a, "--shift-learner") == 0) {
			int found = -1;
			for (int l = 0; l < 4; l++)
				if (strcasecmp(v, LEARNER_NAME[l]) == 0)
					found = l;
			if (found < 0) {
				fprintf(stderr, "learn_bench: --shift-learner: '%s' is not micro, base, gnn or all\n", v);
				return 2;
			}
			o.shift_learner = found;
		} else if (strcmp(a, "--learners") == 0) {
			/* Any case: "gnn,all" and "GNN,ALL" alike (a case-sensitive
			 * match once ran nothing for the second, without a word). */
			bool any = false;
			for (int l = 0; l < 4; l++) {
				o.learner_on[l] = strcasestr(v, LEARNER_NAME[l]) != NULL;
				any |= o.learner_on[l];
			}
			if (!any) {
				fprintf(stderr, "learn_bench: --learners: '%s' names none of micro, base, gnn, all\n", v);
				return 2;
			}
		} else if (strcmp(a, "--fashion-n") == 0) {
			if (parse_u64(v, a, 100, 60000, &x))
				return 2;
			o.d.fashion_n = x;
		} else if (strcmp(a, "--events") == 0) {
			if (parse_u64(v, a, 200, 10000000, &x))
				return 2;
			o.events = x;
		} else if (strcmp(a, "--max-events") == 0) {
			if (parse_u64(v, a, 0, 100000000, &x))
				return 2;
			o.max_events = x;
		} else if (strcmp(a, "--every") == 0) {
			if (parse_u64(v, a, 100, 10000000, &x))
				return 2;
			o.every = x;
		} else if (strcmp(a, "--budget-min") == 0) {
			if (parse_u64(v, a, 0, 100000, &x))
				return 2;
			o.budget_s = (double)x * 60;
		} else if (strcmp(a, "--seed") == 0) {
			if (parse_u64(v, a, 0, UINT32_MAX, &x))
				return 2;
			o.d.seed = x;
		} else {
			usage();
			return 2;
		}
	}
	if (o.max_events < o.events)
		o.max_events = o.events;
	o.d.data_dir = o.data;
	if (!o.work) {
		snprintf(work_buf, sizeof work_buf, "%s/learn/work", o.data);
		o.work = work_buf;
	}
	if (mkdir_p(o.work) || mkdir_p(o.out))
		return 1;
	printf("learn_bench: ruvector %s (library %d), SIMD %s\n", RV_VERSION_STRING, rv_libversion_number(),
	       rv_simd_name());

	setrun srs[3];
	memset(srs, 0, sizeof srs);
	size_t nsets = 0;
	int rc = 0;
	char list[256];
	snprintf(list, sizeof list, "%s", o.sets);
	for (char *save = NULL, *name = strtok_r(list, ",", &save); name && nsets < 3;
	     name = strtok_r(NULL, ",", &save)) {
		setrun *sr = &srs[nsets++];
		double t0 = lb_now();
		if (prepare_set(sr, &o, name)) {
			rc = 1;
			continue;
		}
		run_set_phase1(sr, &o);
		sr->total_s = lb_now() - t0;
	}

	/* Phase 2: on to --max-events. All learners when the projection
	 * (9x each run's training time so far, plus its evaluations) fits the
	 * budget, else ALL alone. */
	char ext_note[1024];
	double elapsed = lb_now() - t_start, proj_all = 0;
	double factor = o.events ? (double)(o.max_events - o.events) / (double)o.events : 0;
	for (size_t i = 0; i < nsets; i++)
		for (int l = 0; l < 4; l++) {
			const run *r = srs[i].learn[l];
			if (!r || r->failed)
				continue;
			double p = factor * r->train_s_phase1 + 5 * r->eval_s / (double)(r->n_pts ? r->n_pts : 1);
			proj_all += p;
		}
	bool ext_all = elapsed + proj_all <= o.budget_s;
	if (o.max_events == o.events)
		snprintf(ext_note, sizeof ext_note, "All runs stop at %llu events.", (unsigned long long)o.events);
	else if (ext_all)
		snprintf(ext_note, sizeof ext_note,
			 "Every learner ran on to %llu events (projected %.1f min in all, within the %.0f min budget).",
			 (unsigned long long)o.max_events, (elapsed + proj_all) / 60.0, o.budget_s / 60.0);
	else
		snprintf(ext_note, sizeof ext_note,
			 "Only %s ran on to %llu events: with every learner the run would have taken about %.1f min, "
			 "over the %.0f min budget (projected from each run's time for its first %llu events).",
			 LEARNER_NAME[3], (unsigned long long)o.max_events, (elapsed + proj_all) / 60.0,
			 o.budget_s / 60.0, (unsigned long long)o.events);
	printf("%s\n", ext_note);
	for (size_t i = 0; i < nsets; i++) {
		for (int l = 0; l < 4; l++) {
			run *r = srs[i].learn[l];
			if (!r || r->failed || o.max_events == o.events)
				continue;
			if (ext_all || l == 3) {
				printf("%s: %s on to %llu events\n", srs[i].set.name, LEARNER_NAME[l],
				       (unsigned long long)o.max_events);
				phase2(r, &o, &srs[i].wa);
			}
		}
		for (int l = 2; l < 4; l++)
			if (srs[i].learn[l])
				rerank100(srs[i].learn[l], &o);
		for (int l = 0; l < 4; l++)
			if (srs[i].learn[l])
				run_close(srs[i].learn[l]);
		write_curves(&srs[i], &o);
	}

	double total = lb_now() - t_start;
	write_report(srs, nsets, &o, total, ext_note);
	printf("total %.1f s\n", total);

	for (size_t i = 0; i < nsets; i++) {
		for (int l = 0; l < 4; l++) {
			free_run(srs[i].learn[l], &o);
			free_run(srs[i].rnd[l], &o);
		}
		for (unsigned k = 0; k < srs[i].n_reps; k++)
			for (int e = 0; e < 2; e++)
				free_run(srs[i].shift[k][e], &o);
		free(srs[i].wa.truth);
		free(srs[i].wb.truth);
		free(srs[i].good_b);
		free(srs[i].qmask[0]);
		free(srs[i].qmask[1]);
		free(srs[i].example);
		lb_free_set(&srs[i].set);
	}
	return rc;
}

/*
 * db_rerank_cat.h - the re-ranker's category term (db_rerank_cat.c).
 *
 * When the learning configuration names a payload field
 * (rv_learn_config.category), the value of that field is an item's
 * category, and the GNN re-ranker adds to each candidate's score
 *
 *   cat(q, v) = sum_a p_q(a) * (sigma [a == c_v] + M[a][c_v])
 *
 * where c_v is v's category and p_q the query's category profile: the
 * categories of its candidate pool, the nearest RV_RCAT_POOL hits by
 * distance, weighted 1 / sqrt(rank + 1) and summing to 1 (a
 * nearest-neighbour estimate of what the query is about, read off the
 * collection's own labels). sigma, shared by all categories, says how
 * much the users want the items of the query's own category; M[a][b]
 * how much users whose queries sit among category a want items of
 * category b (people who search shoes buy socks). Both start at 0 (an
 * untrained term changes nothing) and are learned from the same
 * chosen-versus-skipped pairs as the GNN, but as a pairwise model of
 * their own, with the distance term's weight beta learned too:
 *
 *   P(chosen beats skipped) = sigmoid(beta (base_c - base_s) + cat_c - cat_s)
 *
 * (with the distance as a fixed offset, random clicks taught sigma < 0:
 * the share of a category falls with distance, so it served to cancel
 * the distance, -10% NDCG@10 in tests/test_rerank_cat.c's world). The
 * re-ranker adds the term to a distance of weight 1, so sigma is served
 * as sigma / beta (beta at least RCAT_BETA_MIN = 0.1): the trade-off the
 * clicks imply. Position-corrected clicks among shown items hardly
 * depend on distance, so beta is small and sigma is served up to 10x -
 * which amplifies noise as readily as a preference, so only a sigma
 * that the clicks establish (z = sigma / its standard error >= 3, a
 * sandwich estimate clustered by sample, as the pair weights are
 * inverse propensities, not counts) is served so; otherwise it is
 * served as fitted. Measured on the Debian set: random clicks gave
 * |z| < 2.8 in 6 consolidations, real ones z 6-17; served as fitted the
 * set gained +12% at 10k events, over beta +22%. M is served as
 * fitted: its entries have no such test, and amplified with sigma they
 * cost the Debian set its gain. Because the profile is read from the
 * pool, a query never seen, an item never clicked and a category with
 * few events all take part: sigma generalises to every category.
 *
 * Why it exists: a relation such as "same Debian section as the query"
 * is neither a direction in embedding space (the query adapter) nor a
 * property of an item (the priors), and in fastText vectors it is hardly
 * linear (docs/LEARNING.md, "Why debian gains nothing"); when the items
 * carry the label, the users' clicks can teach how it matters.
 *
 * Categories are the distinct values of the field over the live points
 * when the term is made (strings, numbers and booleans; other values and
 * points without the field have none), the RV_RCAT_MAX most frequent
 * ones; a value seen later has no category until a later consolidation.
 * Category ids are per term; the byte form keeps the names, so going on
 * training from an earlier term maps its weights by name.
 *
 * Threads: like the re-ranker (reads many at once; a per-slot category
 * cache fills through atomics).
 */
#ifndef RV_DB_RERANK_CAT_H
#define RV_DB_RERANK_CAT_H

#include "db_int.h"
#include "learn/learn.h"

#define RV_RCAT_MAX 256     /* categories per term, at most */
#define RV_RCAT_POOL 50     /* hits that form a query's profile, nearest first */
#define RV_RCAT_NONE UINT32_MAX

typedef struct rv_rcat rv_rcat;

/* A query's category profile: distinct categories and their weights. */
typedef struct rv_rcat_profile {
	uint32_t n;
	uint32_t cat[RV_RCAT_POOL];
	float w[RV_RCAT_POOL];
} rv_rcat_profile;

/* A term for payload field `field` (dotted path, 1..RV_LEARN_CATEGORY_MAX - 1
 * bytes) over db's live points. prev (NULL, or a term of the same field):
 * the weights of categories it knows carry over by name. A collection
 * where no live point has the field gives a term with no categories
 * (it scores 0). Errors: RV_EINVAL, RV_ENOMEM. */
rv_status rv_rcat_create(rv_rcat **out, const rv_db *db, const char *field, const rv_rcat *prev, rv_err *e);
rv_status rv_rcat_clone(rv_rcat **out, const rv_rcat *c, const rv_alloc *a, rv_err *e);
void rv_rcat_free(rv_rcat *c); /* NULL is a no-op */
size_t rv_rcat_memory(const rv_rcat *c);
const char *rv_rcat_field(const rv_rcat *c);
uint32_t rv_rcat_count(const rv_rcat *c);
float rv_rcat_sigma(const rv_rcat *c);

/* The category of a live slot, RV_RCAT_NONE when it has none. */
uint32_t rv_rcat_of(const rv_rcat *c, const rv_db *db, uint32_t slot);
/* The profile of a pool given nearest first (slots[0..n), live). */
void rv_rcat_profile_of(rv_rcat_profile *p, const rv_rcat *c, const rv_db *db, const uint32_t *slots, size_t n);
/* cat(q, v) for a candidate of category cat under profile p. */
float rv_rcat_term(const rv_rcat *c, const rv_rcat_profile *p, uint32_t cat);

float rv_rcat_scale(const rv_rcat *c); /* how many times sigma is served (1 untrained) */

/* Training (one thread; the term is the training copy).
 * rv_rcat_anchor: EWC++ - from now on the regulariser of sigma and of
 * each M entry is (l2 + lambda F)/2 (theta - theta*)^2 around the current
 * values, F their Fisher estimate (rv_rcat_fisher_*); lambda 0: l2/2
 * theta^2. rv_rcat_step: one SGD step on the term's pair loss
 * sum w softplus(-(beta (base_c - base_s) + cat_c - cat_s)) over pairs
 * of candidates 0..n-1 (categories cats[0..n), at most 64; distance
 * terms base[0..n), or NULL for none) under profile p, each weight with
 * its regulariser (beta's pulls towards 1).
 * rv_rcat_info_begin / _add / _end: after training, the pairs of every
 * sample once, for sigma's standard error; _end sets the served scale. */
void rv_rcat_anchor(rv_rcat *c, float lambda);
void rv_rcat_step(rv_rcat *c, const rv_rcat_profile *p, const uint32_t *cats, const float *base, size_t n,
		  const rv_gnn_pair *pairs, size_t npairs);
void rv_rcat_info_begin(rv_rcat *c);
void rv_rcat_info_add(rv_rcat *c, const rv_rcat_profile *p, const uint32_t *cats, const float *base, size_t n,
		      const rv_gnn_pair *pairs, size_t npairs);
void rv_rcat_info_end(rv_rcat *c);
/* Fisher estimate: begin, add one sample's data gradient (as for step),
 * then end, which blends the mean squared gradients with the estimate
 * the term started from (rv_rcat_create's prev, weight keep on it; 0
 * when there was none). */
rv_status rv_rcat_fisher_begin(rv_rcat *c);
void rv_rcat_fisher_add(rv_rcat *c, const rv_rcat_profile *p, const uint32_t *cats, const float *base, size_t n,
			const rv_gnn_pair *pairs, size_t npairs);
void rv_rcat_fisher_end(rv_rcat *c, double keep);
/* Whether every weight is finite (training did not diverge). */
bool rv_rcat_finite(const rv_rcat *c);
/* Drop the training state (anchor, Fisher scratch): a serving term. */
void rv_rcat_done(rv_rcat *c);

/* Byte form (inside the re-ranker's): u16 field length, field, u32
 * categories, each u16 length and name; f32 sigma, f32 its Fisher, f32
 * beta, f32 served scale (> 0); u32
 * entries, each u32 index a * categories + b, f32 M, f32 Fisher (non-zero
 * ones, ascending). Decode checks every field (RV_ECORRUPT). */
void rv_rcat_encode(rv_buf *b, const rv_rcat *c);
rv_status rv_rcat_decode(rv_rcat **out, const rv_db *db, rv_reader *rd, rv_err *e);

#endif /* RV_DB_RERANK_CAT_H */

/*
 * test_store.c - the .rvf store: round trips, recovery from torn tails at
 * every byte offset, a flipped byte at every offset, version refusal,
 * locking, I/O and allocation fault injection, and rv_file_verify.
 *
 * Headers for the version tests are crafted here from the byte table in
 * docs/FORMAT.md (with xxHash directly), so the test also pins the format.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "harness.h"
#include "store/rvf.h"

/* ======================================================================
 * Helpers
 * ==================================================================== */

/* Deterministic payload bytes for a segment. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static uint8_t *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
	*n = fread(buf, 1, (size_t)len, f);
	fclose(f);
	return buf;
}

/* Make the file hold exactly p[0..n). Rewrites in place and cuts with
 * ftruncate rather than O_TRUNC: truncating to zero and rewriting makes
 * some file systems flush on close, which would make the thousands of
 * cases below slow. */
static bool write_all(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return false;
	size_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(fd, p + done, n - done, (off_t)done);
		if (w <= 0) {
			close(fd);
			return false;
		}
		done += (size_t)w;
	}
	bool ok = ftruncate(fd, (off_t)n) == 0;
	close(fd);
	return ok;
}

static uint64_t file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : UINT64_MAX;
}

static bool same_ref(const rv_seg_ref *a, const rv_seg_ref *b)
{
	return a->type == b->type && a->seg_id == b->seg_id && a->offset == b->offset &&
	       a->length == b->length;
}

/* What one commit published, to compare a reopened manifest with. */
#define MAX_SEGS 8
#define MAX_COMMITS 8
typedef struct commit_rec {
	uint64_t generation, timestamp_ns;
	uint8_t state[32];
	size_t state_len;
	rv_seg_ref segs[MAX_SEGS];
	size_t n_segs;
	uint64_t end; /* file size right after this commit */
} commit_rec;

typedef struct history {
	commit_rec c[MAX_COMMITS];
	size_t n;
	uint64_t seeds[64]; /* payload seed by segment id */
} history;

static void record(history *h, const rv_file *f)
{
	const rv_manifest *m = rv_file_manifest(f);
	commit_rec *c = &h->c[h->n++];
	c->generation = m->generation;
	c->timestamp_ns = m->timestamp_ns;
	c->state_len = m->state_len;
	memcpy(c->state, m->state, m->state_len);
	c->n_segs = m->n_segs;
	memcpy(c->segs, m->segs, m->n_segs * sizeof *m->segs);
	c->end = rv_file_size(f);
}

static rv_status append_seeded(rv_file *f, history *h, uint8_t type, size_t len, uint64_t seed,
			       rv_seg_ref *ref, rv_err *err)
{
	uint8_t *buf = malloc(len ? len : 1);
	fill(buf, len, seed);
	rv_status st = rv_file_append(f, type, 0, buf, len, ref, err);
	free(buf);
	if (st == RV_OK && h && ref->seg_id < 64)
		h->seeds[ref->seg_id] = seed;
	return st;
}

static rv_status commit_with(rv_file *f, const char *state, const rv_seg_ref *segs, size_t n,
			     rv_err *err)
{
	rv_manifest m = { 0 };
	m.generation = rv_file_manifest(f)->generation + 1;
	m.state = (const uint8_t *)state;
	m.state_len = strlen(state);
	m.segs = segs;
	m.n_segs = n;
	return rv_file_commit(f, &m, err);
}

/* A small file with four commits:
 *   gen 1  create                   (no segments)
 *   gen 2  VEC a(200) META b(100)    names a b
 *   gen 3  VEC c(130)                names a c      (b is dead)
 *   gen 4  JOURNAL d(70)             names c d      (a is dead) */
static bool build_history(const char *path, history *h)
{
	rv_err err;
	rv_file *f;
	memset(h, 0, sizeof *h);
	rv_manifest m0 = { 1, 0, (const uint8_t *)"s1", 2, NULL, 0 };
	if (rv_file_create(&f, path, &m0, NULL, &err) != RV_OK) {
		fprintf(stderr, "create: %s\n", err.msg);
		return false;
	}
	record(h, f);
	rv_seg_ref a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	bool ok = append_seeded(f, h, RV_SEG_VEC, 200, 11, &a, &err) == RV_OK &&
		  append_seeded(f, h, RV_SEG_META, 100, 12, &b, &err) == RV_OK;
	rv_seg_ref g2[] = { a, b };
	ok = ok && commit_with(f, "state two", g2, 2, &err) == RV_OK;
	if (ok)
		record(h, f);
	ok = ok && append_seeded(f, h, RV_SEG_VEC, 130, 13, &c, &err) == RV_OK;
	rv_seg_ref g3[] = { a, c };
	ok = ok && commit_with(f, "state three", g3, 2, &err) == RV_OK;
	if (ok)
		record(h, f);
	ok = ok && append_seeded(f, h, RV_SEG_JOURNAL, 70, 14, &d, &err) == RV_OK;
	rv_seg_ref g4[] = { c, d };
	ok = ok && commit_with(f, "state four", g4, 2, &err) == RV_OK;
	if (ok)
		record(h, f);
	if (!ok)
		fprintf(stderr, "build_history: %s\n", err.msg);
	rv_file_close(f);
	return ok;
}

/* The open manifest equals a recorded commit and every named payload
 * equals what was written. Returns the index of the commit, or -1. */
static int matches_history(const rv_file *f, const history *h)
{
	const rv_manifest *m = rv_file_manifest(f);
	for (size_t i = 0; i < h->n; i++) {
		const commit_rec *c = &h->c[i];
		if (c->generation != m->generation)
			continue;
		if (c->timestamp_ns != m->timestamp_ns || c->state_len != m->state_len ||
		    memcmp(c->state, m->state, c->state_len) != 0 || c->n_segs != m->n_segs)
			return -1;
		for (size_t k = 0; k < c->n_segs; k++) {
			const rv_seg_ref *s = &m->segs[k];
			if (!same_ref(s, &c->segs[k]))
				return -1;
			const uint8_t *p;
			rv_err err;
			if (rv_file_segment_data(&p, f, s, &err) != RV_OK)
				return -1;
			if ((uintptr_t)p % 64 != 0)
				return -1;
			uint8_t *want = malloc(s->length ? s->length : 1);
			fill(want, s->length, h->seeds[s->seg_id]);
			bool same = memcmp(p, want, s->length) == 0;
			free(want);
			if (!same)
				return -1;
		}
		return (int)i;
	}
	return -1;
}

/* Offset of the last MANIFEST header in img, walking segment headers
 * from offset `from` (a segment boundary) to the end. 0 if none. */
static uint64_t last_manifest(const uint8_t *img, size_t n, uint64_t from)
{
	uint64_t pos = from, found = 0;
	while (pos + 64 <= n) {
		uint64_t len = 0;
		for (int i = 0; i < 8; i++)
			len |= (uint64_t)img[pos + 16 + i] << (8 * i);
		if (img[pos + 5] == RV_SEG_MANIFEST)
			found = pos;
		pos += 64 + ((len + 63) & ~63ull);
	}
	return pos == n ? found : 0;
}

typedef struct findings {
	int ok, bad;
	char first_bad[512];
	char all[8192];
} findings;

static void collect(void *ctx, int ok, const char *msg)
{
	findings *fd = ctx;
	if (ok) {
		fd->ok++;
	} else {
		if (fd->bad++ == 0)
			snprintf(fd->first_bad, sizeof fd->first_bad, "%s", msg);
	}
	size_t n = strlen(fd->all);
	snprintf(fd->all + n, sizeof fd->all - n, "%d %s\n", ok, msg);
}

/* A valid file header with the given fields, checksum included. */
static void craft_header(uint8_t *hdr, uint16_t rver, uint16_t wver, uint32_t hlen, uint64_t req,
			 uint64_t opt)
{
	memset(hdr, 0, 64);
	memcpy(hdr, "RUVECTOR", 8);
	hdr[8] = (uint8_t)rver;
	hdr[9] = (uint8_t)(rver >> 8);
	hdr[10] = (uint8_t)wver;
	hdr[11] = (uint8_t)(wver >> 8);
	for (int i = 0; i < 4; i++)
		hdr[12 + i] = (uint8_t)(hlen >> (8 * i));
	for (int i = 0; i < 8; i++) {
		hdr[16 + i] = (uint8_t)(req >> (8 * i));
		hdr[24 + i] = (uint8_t)(opt >> (8 * i));
	}
	uint32_t c = (uint32_t)XXH3_64bits(hdr, 60);
	for (int i = 0; i < 4; i++)
		hdr[60 + i] = (uint8_t)(c >> (8 * i));
}

/* ======================================================================
 * Round trips
 * ==================================================================== */

TEST(roundtrip)
{
	const char *path = rv_test_path("store_roundtrip.rvf");
	rv_err err;
	rv_file *f;
	static const size_t lens[] = { 0, 1, 63, 64, 65, 4096, 1000 };
	enum { N = sizeof lens / sizeof lens[0] };
	rv_seg_ref refs[N];
	uint8_t state[300];
	fill(state, sizeof state, 99);

	rv_manifest m0 = { 1, 0, NULL, 0, NULL, 0 };
	CHECK_MSG(rv_file_create(&f, path, &m0, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(rv_file_manifest(f)->generation == 1);
	CHECK(rv_file_manifest(f)->timestamp_ns != 0);
	CHECK(!rv_file_readonly(f));
	CHECK(strcmp(rv_file_path(f), path) == 0);
	CHECK(rv_file_size(f) == file_size(path));
	for (size_t i = 0; i < N; i++) {
		CHECK_MSG(append_seeded(f, NULL, i % 2 ? RV_SEG_META : RV_SEG_VEC, lens[i], 100 + i,
					&refs[i], &err) == RV_OK,
			  "%s", err.msg);
		CHECK(refs[i].length == lens[i]);
		CHECK(refs[i].offset % 64 == 0);
		CHECK(i == 0 || refs[i].seg_id > refs[i - 1].seg_id);
		CHECK(i == 0 || refs[i].offset > refs[i - 1].offset);
		CHECK(rv_file_size(f) == file_size(path));
	}
	rv_manifest m = { 2, 123456789, state, sizeof state, refs, N };
	CHECK_MSG(rv_file_commit(f, &m, &err) == RV_OK, "%s", err.msg);
	CHECK(rv_file_manifest(f)->generation == 2);
	CHECK(rv_file_manifest(f)->timestamp_ns == 123456789);
	CHECK(rv_file_manifest(f)->n_segs == N);
	rv_file_close(f);

	CHECK_MSG(rv_file_open(&f, path, true, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(rv_file_readonly(f));
	const rv_manifest *got = rv_file_manifest(f);
	CHECK(got->generation == 2);
	CHECK(got->timestamp_ns == 123456789);
	CHECK(got->state_len == sizeof state && memcmp(got->state, state, sizeof state) == 0);
	CHECK(got->n_segs == N);
	for (size_t i = 0; i < N; i++) {
		CHECK(same_ref(&got->segs[i], &refs[i]));
		const uint8_t *p;
		CHECK_MSG(rv_file_segment_data(&p, f, &got->segs[i], &err) == RV_OK, "%s", err.msg);
		CHECK((uintptr_t)p % 64 == 0);
		uint8_t want[4096];
		fill(want, lens[i], 100 + i);
		CHECK(memcmp(p, want, lens[i]) == 0);
	}
	rv_file_close(f);

	/* Writable reopen: keep some old segments, add a new one; ids keep
	 * increasing after the reopen. */
	CHECK_MSG(rv_file_open(&f, path, false, NULL, &err) == RV_OK, "%s", err.msg);
	rv_seg_ref nref;
	CHECK_MSG(append_seeded(f, NULL, RV_SEG_INDEX, 500, 7, &nref, &err) == RV_OK, "%s", err.msg);
	uint64_t max_id = 0;
	for (size_t i = 0; i < N; i++)
		max_id = refs[i].seg_id > max_id ? refs[i].seg_id : max_id;
	CHECK(nref.seg_id > max_id + 1); /* the gen-2 manifest took max_id + 1 */
	rv_seg_ref keep[] = { refs[5], nref, refs[2] };
	rv_manifest m3 = { 3, 0, (const uint8_t *)"x", 1, keep, 3 };
	CHECK_MSG(rv_file_commit(f, &m3, &err) == RV_OK, "%s", err.msg);
	uint64_t size3 = rv_file_size(f);
	rv_file_close(f);
	CHECK(file_size(path) == size3);

	CHECK_MSG(rv_file_open(&f, path, true, NULL, &err) == RV_OK, "%s", err.msg);
	got = rv_file_manifest(f);
	CHECK(got->generation == 3 && got->n_segs == 3 && got->state_len == 1 && got->state[0] == 'x');
	for (int i = 0; i < 3; i++)
		CHECK(same_ref(&got->segs[i], &keep[i]));
	const uint8_t *p;
	CHECK(rv_file_segment_data(&p, f, &keep[1], &err) == RV_OK);
	uint8_t want[500];
	fill(want, 500, 7);
	CHECK(memcmp(p, want, 500) == 0);
	/* A segment of an older manifest that the newest one dropped is not
	 * served. */
	CHECK(rv_file_segment_data(&p, f, &refs[0], &err) == RV_EINVAL);
	rv_file_close(f);

	findings fd = { 0 };
	CHECK_MSG(rv_file_verify(path, collect, &fd, &err) == RV_OK, "%s\n%s", err.msg, fd.all);
	CHECK(fd.bad == 0);
	/* header + 8 data segments + 3 manifests + summary */
	CHECK_MSG(fd.ok == 1 + N + 1 + 3 + 1, "%d ok findings:\n%s", fd.ok, fd.all);
	unlink(path);
}

/* A payload larger than verify's read chunk (1 MiB) and not a multiple
 * of 64: hashing across chunk boundaries, padding in the last chunk. */
TEST(large_segment)
{
	const char *path = rv_test_path("store_large.rvf");
	const size_t len = (5u << 19) + 17; /* 2.5 MiB + 17 */
	rv_err err;
	rv_file *f;
	rv_manifest m0 = { 1, 0, NULL, 0, NULL, 0 };
	CHECK(rv_file_create(&f, path, &m0, NULL, &err) == RV_OK);
	rv_seg_ref r;
	CHECK_MSG(append_seeded(f, NULL, RV_SEG_VEC, len, 21, &r, &err) == RV_OK, "%s", err.msg);
	CHECK(commit_with(f, "big", &r, 1, &err) == RV_OK);
	rv_file_close(f);
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_OK);
	const uint8_t *p;
	CHECK(rv_file_segment_data(&p, f, &rv_file_manifest(f)->segs[0], &err) == RV_OK);
	uint8_t *want = malloc(len);
	fill(want, len, 21);
	CHECK(memcmp(p, want, len) == 0);
	free(want);
	rv_file_close(f);
	findings fd = { 0 };
	CHECK_MSG(rv_file_verify(path, collect, &fd, &err) == RV_OK, "%s", fd.all);

	size_t n;
	uint8_t *img = read_all(path, &n);
	/* Last payload byte (in the third chunk), then a padding byte. */
	uint64_t at[] = { r.offset + 64 + len - 1, r.offset + 64 + (1u << 20), r.offset + 64 + len };
	for (int i = 0; i < 3; i++) {
		img[at[i]] ^= 0x40;
		CHECK(write_all(path, img, n));
		memset(&fd, 0, sizeof fd);
		CHECK(rv_file_verify(path, collect, &fd, &err) == RV_ECORRUPT);
		CHECK_MSG(strstr(fd.all, i < 2 ? "content hash mismatch" : "padding"), "%s", fd.all);
		CHECK(rv_file_open(&f, path, true, NULL, &err) == (i < 2 ? RV_ECORRUPT : RV_OK));
		if (i == 2)
			rv_file_close(f);
		img[at[i]] ^= 0x40;
	}
	free(img);
	unlink(path);
}

TEST(several_commits_newest_wins)
{
	const char *path = rv_test_path("store_history.rvf");
	history h;
	CHECK(build_history(path, &h));
	CHECK(h.n == 4);
	for (size_t i = 1; i < h.n; i++) {
		CHECK(h.c[i].generation == h.c[i - 1].generation + 1);
		CHECK(h.c[i].end > h.c[i - 1].end);
	}
	rv_file *f;
	rv_err err;
	CHECK_MSG(rv_file_open(&f, path, true, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(matches_history(f, &h) == 3);
	rv_file_close(f);
	CHECK_MSG(rv_file_open(&f, path, false, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(matches_history(f, &h) == 3);
	CHECK(rv_file_size(f) == h.c[3].end);
	rv_file_close(f);
	CHECK(file_size(path) == h.c[3].end);
	unlink(path);
}

TEST(uncommitted_appends_are_a_torn_tail)
{
	const char *path = rv_test_path("store_tail.rvf");
	history h;
	CHECK(build_history(path, &h));
	rv_file *f;
	rv_err err;
	rv_seg_ref r1, r2;
	CHECK_MSG(rv_file_open(&f, path, false, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(append_seeded(f, NULL, RV_SEG_VEC, 1000, 50, &r1, &err) == RV_OK);
	CHECK(append_seeded(f, NULL, RV_SEG_META, 10, 51, &r2, &err) == RV_OK);
	/* Appended segments are not readable through the handle. */
	const uint8_t *p;
	CHECK(rv_file_segment_data(&p, f, &r1, &err) == RV_EINVAL);
	CHECK_MSG(strstr(err.msg, "appended later") != NULL, "%s", err.msg);
	rv_file_close(f);
	uint64_t torn = file_size(path);
	CHECK(torn > h.c[3].end);

	/* Read-only: the tail is ignored and left alone. */
	CHECK_MSG(rv_file_open(&f, path, true, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(matches_history(f, &h) == 3);
	rv_file_close(f);
	CHECK(file_size(path) == torn);

	findings fd = { 0 };
	CHECK(rv_file_verify(path, collect, &fd, &err) == RV_ECORRUPT);
	CHECK_MSG(strstr(fd.all, "torn tail") != NULL, "%s", fd.all);
	CHECK(fd.bad == 1);

	/* Writable: the tail is cut off. */
	CHECK_MSG(rv_file_open(&f, path, false, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(matches_history(f, &h) == 3);
	CHECK(rv_file_size(f) == h.c[3].end);
	rv_file_close(f);
	CHECK(file_size(path) == h.c[3].end);
	memset(&fd, 0, sizeof fd);
	CHECK_MSG(rv_file_verify(path, collect, &fd, &err) == RV_OK, "%s", fd.all);
	unlink(path);
}

/* A crash after the manifest payload reached the disk but before its
 * header did leaves a zero header slot: the previous commit stands. */
TEST(crash_before_manifest_header)
{
	const char *path = rv_test_path("store_crash_hdr.rvf");
	history h;
	CHECK(build_history(path, &h));
	size_t n;
	uint8_t *img = read_all(path, &n);
	CHECK(img && n == h.c[3].end);
	uint64_t mpos = last_manifest(img, n, h.c[2].end);
	CHECK(mpos > h.c[2].end);
	memset(img + mpos, 0, 64);
	CHECK(write_all(path, img, n));
	rv_file *f;
	rv_err err;
	CHECK_MSG(rv_file_open(&f, path, true, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(matches_history(f, &h) == 2);
	rv_file_close(f);
	CHECK_MSG(rv_file_open(&f, path, false, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(matches_history(f, &h) == 2);
	rv_file_close(f);
	CHECK(file_size(path) == h.c[2].end);
	free(img);
	unlink(path);
}

/* ======================================================================
 * Damage
 * ==================================================================== */

TEST(truncate_at_every_offset)
{
	const char *path = rv_test_path("store_trunc.rvf");
	history h;
	CHECK(build_history(path, &h));
	size_t n;
	uint8_t *img = read_all(path, &n);
	CHECK(img && n == h.c[3].end);
	int recovered = 0, refused = 0;
	for (size_t t = 0; t <= n; t++) {
		CHECK(write_all(path, img, t));
		/* The newest commit that lies wholly within the first t bytes. */
		int want = -1;
		for (size_t i = 0; i < h.n; i++)
			if (h.c[i].end <= t)
				want = (int)i;
		rv_file *f;
		rv_err err;
		rv_status st = rv_file_open(&f, path, true, NULL, &err);
		if (want < 0) {
			CHECK_MSG(st == RV_ECORRUPT, "t=%zu: %s", t, rv_status_str(st));
			refused++;
			continue;
		}
		CHECK_MSG(st == RV_OK, "t=%zu: %s", t, err.msg);
		CHECK_MSG(matches_history(f, &h) == want, "t=%zu", t);
		rv_file_close(f);
		CHECK(file_size(path) == t);
		/* Writable opens check and cut only from the second-last
		 * commit on (each cut costs an fsync). */
		if (t >= h.c[2].end) {
			st = rv_file_open(&f, path, false, NULL, &err);
			CHECK_MSG(st == RV_OK, "t=%zu: %s", t, err.msg);
			CHECK(matches_history(f, &h) == want);
			rv_file_close(f);
			CHECK_MSG(file_size(path) == h.c[want].end, "t=%zu", t);
		}
		recovered++;
	}
	fprintf(stderr, "   %d cuts recovered, %d refused (before the first commit)\n", recovered,
		refused);
	CHECK(recovered > 0 && refused > 0);
	free(img);
	unlink(path);
}

TEST(flip_every_byte)
{
	const char *path = rv_test_path("store_flip.rvf");
	history h;
	CHECK(build_history(path, &h));
	size_t n;
	uint8_t *img = read_all(path, &n);
	CHECK(img && n == h.c[3].end);
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	int opened = 0, refused = 0, verified_bad = 0, cases = 0;
	for (size_t mi = 0; mi < sizeof masks; mi++) {
		for (size_t off = 0; off < n; off++) {
			img[off] ^= masks[mi];
			CHECK(write_all(path, img, n));
			img[off] ^= masks[mi];
			cases++;
			rv_file *f;
			rv_err err;
			rv_status st = rv_file_open(&f, path, true, NULL, &err);
			if (st == RV_OK) {
				int k = matches_history(f, &h);
				rv_file_close(f);
				CHECK_MSG(k >= 0, "flip 0x%02x at %zu: wrong manifest or data", masks[mi], off);
				opened++;
			} else {
				CHECK_MSG(st == RV_ECORRUPT, "flip 0x%02x at %zu: %s", masks[mi], off,
					  rv_status_str(st));
				CHECK_MSG(strstr(err.msg, "offset") != NULL, "flip at %zu: %s", off, err.msg);
				refused++;
			}
			/* A writable open gives the same answer and never cuts
			 * off committed data because of a flip. */
			rv_status st2 = rv_file_open(&f, path, false, NULL, &err);
			CHECK_MSG(st2 == st, "flip at %zu: %s vs %s", off, rv_status_str(st),
				  rv_status_str(st2));
			if (st2 == RV_OK) {
				CHECK(matches_history(f, &h) >= 0);
				rv_file_close(f);
			}
			CHECK(file_size(path) == n);
			/* Every byte is covered by a checksum, a hash or the
			 * padding check. */
			findings fd = { 0 };
			st = rv_file_verify(path, collect, &fd, &err);
			CHECK_MSG(st == RV_ECORRUPT && fd.bad > 0, "flip 0x%02x at %zu not flagged by verify",
				  masks[mi], off);
			verified_bad++;
		}
	}
	fprintf(stderr, "   %d flips: %d opened to an intact commit, %d refused; verify flagged %d\n",
		cases, opened, refused, verified_bad);
	CHECK(opened > 0 && refused > 0);
	free(img);
	unlink(path);
}

TEST(damage_messages)
{
	const char *path = rv_test_path("store_damage.rvf");
	history h;
	CHECK(build_history(path, &h));
	size_t n;
	uint8_t *img = read_all(path, &n);
	const rv_seg_ref *c = &h.c[3].segs[0]; /* VEC c, live in gen 4 */
	CHECK(c->type == RV_SEG_VEC);
	rv_file *f;
	rv_err err;
	char want[200];

	/* A live payload byte. */
	img[c->offset + 64 + 5] ^= 0x10;
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_ECORRUPT);
	snprintf(want, sizeof want, "segment %llu (VEC) at offset %llu: content hash mismatch",
		 (unsigned long long)c->seg_id, (unsigned long long)c->offset);
	CHECK_MSG(strstr(err.msg, want) != NULL, "%s", err.msg);
	CHECK(strstr(err.msg, path) != NULL);
	img[c->offset + 64 + 5] ^= 0x10;

	/* The newest manifest's payload. */
	uint64_t mpos = last_manifest(img, n, h.c[2].end);
	CHECK(mpos > h.c[2].end);
	img[mpos + 64 + 9] ^= 1;
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_ECORRUPT);
	CHECK_MSG(strstr(err.msg, "(MANIFEST)") && strstr(err.msg, "content hash mismatch"), "%s",
		  err.msg);
	CHECK(file_size(path) == n);
	img[mpos + 64 + 9] ^= 1;

	/* A block of zeros over a committed header in the middle looks like
	 * the end of the data, but the commits after it prove otherwise. */
	uint8_t saved[64];
	memcpy(saved, img + c->offset, 64);
	memset(img + c->offset, 0, 64);
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_ECORRUPT);
	CHECK_MSG(strstr(err.msg, "complete manifest follows"), "%s", err.msg);
	CHECK(file_size(path) == n);
	memcpy(img + c->offset, saved, 64);

	/* A dead segment (b, dropped by gen 3) is not checked by open, but
	 * verify finds it. */
	const rv_seg_ref *b = &h.c[1].segs[1];
	img[b->offset + 64 + 3] ^= 4;
	CHECK(write_all(path, img, n));
	CHECK_MSG(rv_file_open(&f, path, true, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(matches_history(f, &h) == 3);
	rv_file_close(f);
	findings fd = { 0 };
	CHECK(rv_file_verify(path, collect, &fd, &err) == RV_ECORRUPT);
	snprintf(want, sizeof want, "segment %llu (META) at offset %llu: content hash mismatch",
		 (unsigned long long)b->seg_id, (unsigned long long)b->offset);
	CHECK_MSG(strstr(fd.all, want) != NULL, "%s", fd.all);
	img[b->offset + 64 + 3] ^= 4;

	/* Padding: harmless to open, flagged by verify. */
	img[b->offset + 64 + b->length] = 0xAA;
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_OK);
	rv_file_close(f);
	memset(&fd, 0, sizeof fd);
	CHECK(rv_file_verify(path, collect, &fd, &err) == RV_ECORRUPT);
	CHECK_MSG(strstr(fd.all, "padding") != NULL, "%s", fd.all);
	img[b->offset + 64 + b->length] = 0;

	CHECK(write_all(path, img, n));
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_OK);
	free(img);
	unlink(path);
}

TEST(short_and_empty_files)
{
	const char *path = rv_test_path("store_short.rvf");
	rv_file *f;
	rv_err err;
	static const uint8_t junk[100] = { 'R', 'U', 'V' };
	size_t sizes[] = { 0, 1, 63, 64, 100 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		CHECK(write_all(path, junk, sizes[i]));
		CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_ECORRUPT);
		CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_ECORRUPT);
		CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_ECORRUPT);
	}
	/* A valid file header and nothing else: no commit. */
	uint8_t hdr[64];
	craft_header(hdr, 1, 1, 64, 0, 0);
	CHECK(write_all(path, hdr, 64));
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_ECORRUPT);
	CHECK_MSG(strstr(err.msg, "no complete commit"), "%s", err.msg);
	unlink(path);
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_ENOTFOUND);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_ENOTFOUND);
	/* Not a regular file: refused without blocking. */
	CHECK(mkfifo(path, 0644) == 0);
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_EINVAL);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_EINVAL);
	unlink(path);
}

TEST(version_and_features)
{
	const char *path = rv_test_path("store_version.rvf");
	history h;
	CHECK(build_history(path, &h));
	size_t n;
	uint8_t *img = read_all(path, &n);
	rv_file *f;
	rv_err err;
	/* The file written by this build matches the documented header. */
	uint8_t hdr[64];
	memcpy(hdr, img, 64);
	craft_header(img, 1, 1, 64, 0, 0);
	memcpy(img + 32, hdr + 32, 24); /* created + file id */
	uint32_t c = (uint32_t)XXH3_64bits(img, 60);
	for (int i = 0; i < 4; i++)
		img[60 + i] = (uint8_t)(c >> (8 * i));
	CHECK(memcmp(img, hdr, 64) == 0);

	craft_header(img, 2, 2, 64, 0, 0);
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_EVERSION);
	CHECK_MSG(strstr(err.msg, "file needs a newer ruvector (read version 2, this build reads 1)"),
		  "%s", err.msg);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_EVERSION);

	craft_header(img, 1, 2, 64, 0, 0);
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_EVERSION);
	CHECK_MSG(strstr(err.msg, "read-only"), "%s", err.msg);
	CHECK_MSG(rv_file_open(&f, path, true, NULL, &err) == RV_OK, "%s", err.msg);
	CHECK(matches_history(f, &h) == 3);
	rv_file_close(f);

	craft_header(img, 1, 1, 64, 1ull << 5, 0);
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_EVERSION);
	CHECK_MSG(strstr(err.msg, "required feature bits 0x20"), "%s", err.msg);

	/* Unknown optional features are ignored. */
	craft_header(img, 1, 1, 64, 0, 1ull << 40);
	CHECK(write_all(path, img, n));
	CHECK_MSG(rv_file_open(&f, path, false, NULL, &err) == RV_OK, "%s", err.msg);
	rv_file_close(f);

	craft_header(img, 1, 1, 128, 0, 0);
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_ECORRUPT);

	craft_header(img, 1, 1, 64, 0, 0);
	img[0] = 'X';
	CHECK(write_all(path, img, n));
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_ECORRUPT);
	CHECK_MSG(strstr(err.msg, "not a ruvector file"), "%s", err.msg);
	free(img);
	unlink(path);
}

/* ======================================================================
 * Files built byte by byte from docs/FORMAT.md
 * ==================================================================== */

typedef struct spec {
	uint8_t b[4096];
	size_t n;
} spec;

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void spec_u(spec *s, uint64_t v, int bytes)
{
	put_le(s->b + s->n, v, bytes);
	s->n += (size_t)bytes;
}

/* Append a segment; returns its offset. */
static uint64_t spec_segment(spec *s, uint8_t type, uint64_t id, const uint8_t *payload, size_t len)
{
	uint64_t off = s->n;
	uint8_t *h = s->b + off;
	memset(h, 0, 64);
	memcpy(h, "RVFS", 4);
	h[4] = 1;
	h[5] = type;
	put_le(h + 8, id, 8);
	put_le(h + 16, len, 8);
	put_le(h + 24, 1700000000000000000ull, 8);
	h[32] = 1; /* XXH3-128 */
	XXH128_hash_t x = XXH3_128bits(payload, len);
	put_le(h + 40, x.low64, 8);
	put_le(h + 48, x.high64, 8);
	put_le(h + 60, (uint32_t)XXH3_64bits(h, 60), 4);
	memcpy(s->b + off + 64, payload, len);
	s->n = off + 64 + ((len + 63) & ~(size_t)63);
	memset(s->b + off + 64 + len, 0, s->n - (off + 64 + len));
	return off;
}

typedef struct spec_entry {
	uint8_t type;
	uint64_t id, offset, length;
} spec_entry;

/* A manifest payload; ext (may be NULL) is appended raw after the
 * extension count ext_count. */
static size_t spec_manifest(uint8_t *out, uint64_t gen, uint64_t prev, const char *state,
			    const spec_entry *e, size_t n, uint32_t ext_count, const uint8_t *ext,
			    size_t ext_len)
{
	spec m = { .n = 0 };
	memcpy(m.b, "RVMF", 4);
	m.n = 4;
	spec_u(&m, 1, 2);
	spec_u(&m, 0, 2);
	spec_u(&m, gen, 8);
	spec_u(&m, 1700000000000000001ull, 8);
	spec_u(&m, prev, 8);
	spec_u(&m, strlen(state), 8);
	memcpy(m.b + m.n, state, strlen(state));
	m.n += strlen(state);
	spec_u(&m, n, 8);
	for (size_t i = 0; i < n; i++) {
		spec_u(&m, e[i].type, 1);
		spec_u(&m, 0, 7);
		spec_u(&m, e[i].id, 8);
		spec_u(&m, e[i].offset, 8);
		spec_u(&m, e[i].length, 8);
	}
	spec_u(&m, ext_count, 4);
	if (ext_len)
		memcpy(m.b + m.n, ext, ext_len);
	m.n += ext_len;
	memcpy(out, m.b, m.n);
	return m.n;
}

/* header, manifest gen 1 (id 1), VEC (id 2), manifest gen 2 (id 3) naming
 * the entries given (NULL: the VEC). Returns the status of a read-only
 * open, and the message in err. */
static rv_status open_spec_file(const char *path, const spec_entry *e, size_t n, uint64_t prev2,
				uint32_t ext_count, const uint8_t *ext, size_t ext_len, rv_err *err,
				uint64_t *gen)
{
	spec s = { .n = 0 };
	craft_header(s.b, 1, 1, 64, 0, 0);
	s.n = 64;
	uint8_t mp[1024];
	size_t ml = spec_manifest(mp, 1, 0, "", NULL, 0, 0, NULL, 0);
	uint64_t m1 = spec_segment(&s, RV_SEG_MANIFEST, 1, mp, ml);
	uint8_t vec[100];
	fill(vec, sizeof vec, 5);
	uint64_t v = spec_segment(&s, RV_SEG_VEC, 2, vec, sizeof vec);
	spec_entry def = { RV_SEG_VEC, 2, v, sizeof vec };
	if (!e) {
		e = &def;
		n = 1;
	}
	ml = spec_manifest(mp, 2, prev2 == UINT64_MAX ? m1 : prev2, "st", e, n, ext_count, ext,
			   ext_len);
	spec_segment(&s, RV_SEG_MANIFEST, 3, mp, ml);
	if (!write_all(path, s.b, s.n))
		return RV_ERROR;
	rv_file *f;
	rv_status st = rv_file_open(&f, path, true, NULL, err);
	if (st == RV_OK) {
		const rv_manifest *m = rv_file_manifest(f);
		*gen = m->generation;
		const uint8_t *p;
		if (m->n_segs != n || rv_file_segment_data(&p, f, &m->segs[0], err) != RV_OK ||
		    memcmp(p, vec, sizeof vec) != 0 || m->state_len != 2 || memcmp(m->state, "st", 2))
			st = RV_ERROR;
		rv_file_close(f);
	}
	return st;
}

TEST(spec_built_files)
{
	const char *path = rv_test_path("store_spec.rvf");
	rv_err err;
	uint64_t gen = 0;
	rv_status st = open_spec_file(path, NULL, 0, UINT64_MAX, 0, NULL, 0, &err, &gen);
	CHECK_MSG(st == RV_OK && gen == 2, "%s: %s", rv_status_str(st), err.msg);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_OK);

	/* An optional extension is skipped; a required one refuses. */
	uint8_t ext[16 + 5] = { 0 };
	put_le(ext, 77, 4);
	put_le(ext + 8, 5, 8);
	st = open_spec_file(path, NULL, 0, UINT64_MAX, 1, ext, sizeof ext, &err, &gen);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	put_le(ext + 4, 1, 4);
	st = open_spec_file(path, NULL, 0, UINT64_MAX, 1, ext, sizeof ext, &err, &gen);
	CHECK_MSG(st == RV_EVERSION && strstr(err.msg, "required extension"), "%s", err.msg);
	/* Trailing bytes, or an extension running past the payload. */
	st = open_spec_file(path, NULL, 0, UINT64_MAX, 0, ext, 3, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT && strstr(err.msg, "trailing"), "%s", err.msg);
	st = open_spec_file(path, NULL, 0, UINT64_MAX, 1, ext, 16, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT && strstr(err.msg, "extension runs past"), "%s", err.msg);

	/* Wrong link to the previous manifest. */
	st = open_spec_file(path, NULL, 0, 0, 0, NULL, 0, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT && strstr(err.msg, "previous manifest"), "%s", err.msg);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_ECORRUPT);

	/* Bad segment tables. VEC is at 64 + 128 = 192 with 100 bytes. */
	spec_entry twice[] = { { RV_SEG_VEC, 2, 192, 100 }, { RV_SEG_VEC, 2, 192, 100 } };
	st = open_spec_file(path, twice, 2, UINT64_MAX, 0, NULL, 0, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT && strstr(err.msg, "segment 2 (VEC) at offset 192: named twice"),
		  "%s", err.msg);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_ECORRUPT);
	spec_entry bad_len[] = { { RV_SEG_VEC, 2, 192, 99 } };
	st = open_spec_file(path, bad_len, 1, UINT64_MAX, 0, NULL, 0, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT && strstr(err.msg, "expects segment 2 (VEC), 99 bytes"), "%s",
		  err.msg);
	spec_entry bad_type[] = { { RV_SEG_META, 2, 192, 100 } };
	st = open_spec_file(path, bad_type, 1, UINT64_MAX, 0, NULL, 0, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT, "%s", err.msg);
	spec_entry names_manifest[] = { { RV_SEG_MANIFEST, 1, 64, 52 } };
	st = open_spec_file(path, names_manifest, 1, UINT64_MAX, 0, NULL, 0, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT && strstr(err.msg, "names a MANIFEST segment"), "%s", err.msg);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_ECORRUPT);
	spec_entry nowhere[] = { { RV_SEG_VEC, 2, 200, 100 } };
	st = open_spec_file(path, nowhere, 1, UINT64_MAX, 0, NULL, 0, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT && strstr(err.msg, "missing"), "%s", err.msg);
	/* A segment at or after the manifest cannot be named by it. */
	spec_entry itself[] = { { RV_SEG_VEC, 3, 384, 0 } };
	st = open_spec_file(path, itself, 1, UINT64_MAX, 0, NULL, 0, &err, &gen);
	CHECK_MSG(st == RV_ECORRUPT && strstr(err.msg, "missing"), "%s", err.msg);
	unlink(path);
}

/* ======================================================================
 * Locking, argument checks
 * ==================================================================== */

TEST(locking)
{
	const char *path = rv_test_path("store_lock.rvf");
	history h;
	CHECK(build_history(path, &h));
	rv_file *w, *w2, *r1, *r2;
	rv_err err;
	CHECK(rv_file_open(&w, path, false, NULL, &err) == RV_OK);
	CHECK(rv_file_open(&w2, path, false, NULL, &err) == RV_EBUSY);
	CHECK_MSG(strstr(err.msg, "locked by another writer") && strstr(err.msg, path), "%s", err.msg);
	CHECK(rv_file_open(&r1, path, true, NULL, &err) == RV_EBUSY);
	/* verify takes no lock */
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_OK);
	rv_file_close(w);
	CHECK(rv_file_open(&r1, path, true, NULL, &err) == RV_OK);
	CHECK(rv_file_open(&r2, path, true, NULL, &err) == RV_OK);
	CHECK(rv_file_open(&w, path, false, NULL, &err) == RV_EBUSY);
	rv_file_close(r1);
	rv_file_close(r2);
	CHECK(rv_file_open(&w, path, false, NULL, &err) == RV_OK);
	rv_file_close(w);
	unlink(path);
}

TEST(argument_checks)
{
	const char *path = rv_test_path("store_args.rvf");
	history h;
	CHECK(build_history(path, &h));
	rv_file *f;
	rv_err err;
	rv_manifest m0 = { 1, 0, NULL, 0, NULL, 0 };
	CHECK(rv_file_create(&f, path, &m0, NULL, &err) == RV_EIO); /* exists */
	CHECK(f == NULL);

	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_OK);
	rv_seg_ref r;
	CHECK(rv_file_append(f, RV_SEG_VEC, 0, "abc", 3, &r, &err) == RV_EREADONLY);
	rv_manifest m = { 5, 0, NULL, 0, NULL, 0 };
	CHECK(rv_file_commit(f, &m, &err) == RV_EREADONLY);
	rv_file_close(f);

	CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_OK);
	CHECK(rv_file_append(f, RV_SEG_MANIFEST, 0, "abc", 3, &r, &err) == RV_EINVAL);
	CHECK(rv_file_append(f, RV_SEG_VEC, RV_SEGF_COMPRESSED, "abc", 3, &r, &err) == RV_EINVAL);
	CHECK(rv_file_append(f, RV_SEG_VEC, 0, NULL, 3, &r, &err) == RV_EINVAL);
	CHECK(rv_file_size(f) == h.c[3].end);
	CHECK(rv_file_append(f, RV_SEG_VEC, 0, "abc", 3, &r, &err) == RV_OK);

	m.generation = 4; /* current, not current + 1 */
	CHECK(rv_file_commit(f, &m, &err) == RV_EINVAL);
	CHECK_MSG(strstr(err.msg, "generation must be 5"), "%s", err.msg);
	m.generation = 5;
	rv_seg_ref fake = r;
	fake.length = 4;
	m.segs = &fake;
	m.n_segs = 1;
	CHECK(rv_file_commit(f, &m, &err) == RV_EINVAL);
	CHECK_MSG(strstr(err.msg, "neither named"), "%s", err.msg);
	/* A dead segment of an older commit is not in the verified set. */
	m.segs = &h.c[1].segs[1];
	CHECK(rv_file_commit(f, &m, &err) == RV_EINVAL);
	rv_seg_ref twice[] = { r, h.c[3].segs[0], r };
	m.segs = twice;
	m.n_segs = 3;
	CHECK(rv_file_commit(f, &m, &err) == RV_EINVAL);
	CHECK_MSG(strstr(err.msg, "twice"), "%s", err.msg);
	CHECK(rv_file_size(f) == file_size(path));
	m.n_segs = 2;
	CHECK_MSG(rv_file_commit(f, &m, &err) == RV_OK, "%s", err.msg);
	/* Segments of the open-time manifest stay readable after a commit. */
	const uint8_t *p;
	CHECK(rv_file_segment_data(&p, f, &h.c[3].segs[0], &err) == RV_OK);
	rv_seg_ref bogus = { RV_SEG_VEC, 1, 999 * 64, 10 };
	CHECK(rv_file_segment_data(&p, f, &bogus, &err) == RV_EINVAL);
	rv_file_close(f);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_OK);
	unlink(path);
}

TEST(rename_over)
{
	const char *tmp = rv_test_path("store_rename.tmp");
	const char *fin = rv_test_path("store_rename.rvf");
	history h;
	CHECK(build_history(fin, &h));
	rv_file *f;
	rv_err err;
	rv_manifest m0 = { 1, 0, (const uint8_t *)"fresh", 5, NULL, 0 };
	CHECK(rv_file_create(&f, tmp, &m0, NULL, &err) == RV_OK);
	rv_file_close(f);
	CHECK(rv_file_rename_over(tmp, fin, &err) == RV_OK);
	CHECK(file_size(tmp) == UINT64_MAX);
	CHECK(rv_file_open(&f, fin, true, NULL, &err) == RV_OK);
	CHECK(rv_file_manifest(f)->generation == 1 && rv_file_manifest(f)->state_len == 5);
	rv_file_close(f);
	CHECK(rv_file_rename_over(tmp, fin, &err) == RV_EIO); /* tmp is gone */
	CHECK(strstr(err.msg, strerror(ENOENT)) != NULL);
	unlink(fin);
}

/* ======================================================================
 * Fault injection
 * ==================================================================== */

TEST(io_failure_in_commit)
{
	const char *path = rv_test_path("store_eio.rvf");
	int failures = 0;
	for (unsigned n = 1;; n++) {
		CHECK(n < 50);
		history h;
		CHECK(build_history(path, &h));
		rv_file *f;
		rv_err err;
		rv_seg_ref r;
		CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_OK);
		CHECK(append_seeded(f, &h, RV_SEG_VEC, 300, 77, &r, &err) == RV_OK);
		uint64_t before = rv_file_size(f);
		rv_seg_ref segs[] = { h.c[3].segs[1], r };
		rv_manifest m = { 5, 0, (const uint8_t *)"five", 4, segs, 2 };
		rv_file_fail_io_after(f, n);
		rv_status st = rv_file_commit(f, &m, &err);
		if (st == RV_OK) {
			/* n is past the last I/O of a commit. */
			rv_file_close(f);
			break;
		}
		failures++;
		CHECK_MSG(st == RV_EIO, "n=%u: %s", n, rv_status_str(st));
		CHECK_MSG(strstr(err.msg, strerror(EIO)), "%s", err.msg);
		CHECK(rv_file_manifest(f)->generation == 4);
		CHECK(rv_file_size(f) == before);
		CHECK(file_size(path) == before);
		if (n % 2) {
			/* Give up: the next open shows the previous commit and
			 * drops the appended segment. */
			rv_file_close(f);
			CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_OK);
			CHECK(matches_history(f, &h) == 3);
			rv_file_close(f);
			CHECK(file_size(path) == h.c[3].end);
		} else {
			/* Retry on the same handle. */
			CHECK_MSG(rv_file_commit(f, &m, &err) == RV_OK, "n=%u retry: %s", n, err.msg);
			rv_file_close(f);
			CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_OK);
			CHECK(rv_file_manifest(f)->generation == 5);
			record(&h, f);
			CHECK(matches_history(f, &h) == 4);
			rv_file_close(f);
			CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_OK);
		}
		unlink(path);
	}
	fprintf(stderr, "   %d injected commit failures\n", failures);
	/* write + fsync + header write + fsync */
	CHECK(failures >= 3);
	unlink(path);
}

TEST(io_failure_in_append)
{
	const char *path = rv_test_path("store_eio_append.rvf");
	history h;
	CHECK(build_history(path, &h));
	rv_file *f;
	rv_err err;
	rv_seg_ref r, r2;
	CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_OK);
	CHECK(append_seeded(f, &h, RV_SEG_VEC, 300, 1, &r, &err) == RV_OK);
	uint64_t before = rv_file_size(f);
	rv_file_fail_io_after(f, 1);
	CHECK(append_seeded(f, NULL, RV_SEG_VEC, 5000, 2, &r2, &err) == RV_EIO);
	CHECK_MSG(strstr(err.msg, strerror(EIO)) && strstr(err.msg, path), "%s", err.msg);
	CHECK(rv_file_size(f) == before && file_size(path) == before);
	/* The failed segment cannot be named; the earlier one still can. */
	rv_seg_ref segs[] = { r };
	CHECK(commit_with(f, "after eio", segs, 1, &err) == RV_OK);
	rv_file_close(f);
	CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_OK);
	unlink(path);
}

TEST(alloc_failure_open)
{
	const char *path = rv_test_path("store_oom.rvf");
	history h;
	CHECK(build_history(path, &h));
	for (int ro = 1; ro >= 0; ro--) {
		int failed = 0;
		for (long n = 1;; n++) {
			CHECK(n < 1000);
			rv_test_alloc t;
			rv_test_alloc_init(&t);
			t.fail_at = n;
			rv_file *f;
			rv_err err;
			rv_status st = rv_file_open(&f, path, ro, &t.hooks, &err);
			if (st == RV_OK) {
				CHECK(matches_history(f, &h) == 3);
				rv_file_close(f);
				CHECK(t.live == 0);
				break;
			}
			CHECK_MSG(st == RV_ENOMEM, "n=%ld: %s", n, err.msg);
			CHECK(f == NULL);
			CHECK_MSG(t.live == 0, "n=%ld: %ld blocks leaked", n, t.live);
			failed++;
		}
		CHECK(failed >= 3);
	}
	unlink(path);
}

TEST(alloc_failure_write)
{
	const char *path = rv_test_path("store_oom_write.rvf");
	history h;
	CHECK(build_history(path, &h));
	int failed = 0;
	for (long n = 1;; n++) {
		CHECK(n < 1000);
		rv_test_alloc t;
		rv_test_alloc_init(&t);
		rv_file *f;
		rv_err err;
		CHECK(rv_file_open(&f, path, false, &t.hooks, &err) == RV_OK);
		/* Fail the nth allocation made by the append + commit. */
		t.fail_at = n;
		uint64_t before = rv_file_size(f);
		rv_seg_ref r;
		rv_status st = append_seeded(f, NULL, RV_SEG_VEC, 64, 3, &r, &err);
		if (st == RV_OK) {
			rv_seg_ref segs[] = { r };
			st = commit_with(f, "oom", segs, 1, &err);
		}
		if (st == RV_OK) {
			CHECK(rv_file_manifest(f)->generation == 5);
			rv_file_close(f);
			CHECK(t.live == 0);
			CHECK(rv_file_verify(path, NULL, NULL, &err) == RV_OK);
			break;
		}
		CHECK_MSG(st == RV_ENOMEM, "n=%ld: %s", n, err.msg);
		/* Nothing was published, and the handle still works. */
		CHECK(rv_file_manifest(f)->generation == 4);
		t.fail_at = 0;
		CHECK(rv_file_size(f) >= before);
		rv_seg_ref r2;
		CHECK(append_seeded(f, NULL, RV_SEG_META, 10, 4, &r2, &err) == RV_OK);
		rv_file_close(f);
		CHECK(t.live == 0);
		failed++;
		/* Undo the uncommitted appends for the next round. */
		CHECK(rv_file_open(&f, path, false, NULL, &err) == RV_OK);
		rv_file_close(f);
		CHECK(file_size(path) == h.c[3].end);
	}
	CHECK(failed >= 2);
	unlink(path);
}

/* ======================================================================
 * Required feature bits written by create; payload checks in verify
 * ==================================================================== */

typedef struct seen {
	int bad, quant_bad;
	char msg[RV_ERR_MAX];
} seen;

static void note(void *ctx, int ok, const char *msg)
{
	seen *s = ctx;
	if (!ok) {
		s->bad++;
		if (strstr(msg, "(QUANT)"))
			s->quant_bad++;
		snprintf(s->msg, sizeof s->msg, "%s", msg);
	}
}

/* The payload check of the test: a QUANT payload must start with "ok". */
static bool starts_ok(void *ctx, uint8_t type, const uint8_t *p, uint64_t len, char *why, size_t why_len)
{
	int *calls = ctx;
	(*calls)++;
	if (type == RV_SEG_QUANT && len >= 2 && p[0] == 'o' && p[1] == 'k')
		return true;
	snprintf(why, why_len, "payload of %llu bytes does not start with ok", (unsigned long long)len);
	return false;
}

TEST(features_and_payload_checks)
{
	const char *path = rv_test_path("store_features.rvf");
	rv_err err;
	rv_file *f = NULL;
	uint8_t state[4] = { 1, 2, 3, 4 };
	rv_manifest m0 = { .generation = 1, .state = state, .state_len = sizeof state };
	/* Unknown bits are refused at create; a known one is written. */
	unlink(path);
	CHECK(rv_file_create_v2(&f, path, &m0, 1ull << 9, NULL, &err) == RV_EINVAL && strstr(err.msg, "0x200"));
	CHECK(access(path, F_OK) != 0);
	CHECK(rv_file_create_v2(&f, path, &m0, RV_FEATURE_QUANT, NULL, &err) == RV_OK);
	CHECK(rv_file_features(f) == RV_FEATURE_QUANT);
	rv_seg_ref r[3];
	CHECK(rv_file_append(f, RV_SEG_QUANT, 0, "ok, fine", 8, &r[0], &err) == RV_OK);
	CHECK(rv_file_append(f, RV_SEG_QUANT, 0, "bad", 3, &r[1], &err) == RV_OK);
	CHECK(rv_file_append(f, RV_SEG_VEC, 0, "not checked", 11, &r[2], &err) == RV_OK);
	rv_manifest m1 = { .generation = 2, .state = state, .state_len = sizeof state, .segs = r, .n_segs = 3 };
	CHECK(rv_file_commit(f, &m1, &err) == RV_OK);
	rv_file_close(f);
	size_t n;
	uint8_t *img = read_all(path, &n);
	CHECK(img && rv_get_u64(img + 16) == RV_FEATURE_QUANT);
	free(img);
	CHECK(rv_file_open(&f, path, true, NULL, &err) == RV_OK);
	CHECK(rv_file_features(f) == RV_FEATURE_QUANT);
	rv_file_close(f);
	/* Without a check every payload is fine; with one, the QUANT payload
	 * that fails it is a finding naming the segment, and only payloads of
	 * the named types are passed to it. */
	seen s = { 0, 0, "" };
	CHECK(rv_file_verify_v2(path, note, &s, NULL, &err) == RV_OK && s.bad == 0);
	int calls = 0;
	rv_payload_check chk = { 1ull << RV_SEG_QUANT, starts_ok, &calls };
	CHECK(rv_file_verify_v2(path, note, &s, &chk, &err) == RV_ECORRUPT);
	/* The first finding names the payload; the commit that names it is
	 * then damaged too (and so its bytes a tail after the last good one). */
	CHECK_MSG(calls == 2 && s.quant_bad == 2 && strstr(err.msg, "segment 3 (QUANT) at offset 320") &&
			  strstr(err.msg, "does not start with ok"),
		  "%d %d %s", calls, s.quant_bad, err.msg);
}

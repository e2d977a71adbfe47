/*
 * fuzz_rvf_reader.c - the .rvf reader on arbitrary bytes.
 *
 * The input becomes a file (an anonymous memfd, opened by its
 * /proc/self/fd path) that goes through everything that reads untrusted
 * file bytes: a read-only open, every segment the manifest names, verify,
 * and a writable open (which may cut a torn tail). Besides the sanitizers'
 * checks it asserts one property of recovery: whenever a writable open
 * succeeds and a commit on it succeeds, the file reopens to exactly that
 * commit.
 *
 * Random mutations almost never produce a valid checksum, so each input
 * runs twice: as given, and with every checksum and content hash
 * recomputed for the headers it contains. The second run takes mutated
 * manifests and segment tables past the hashes into the parsers and the
 * cross-checks behind them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "store/rvf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_finding(void *ctx, int ok, const char *msg)
{
	/* Touch the message so a bad pointer or a missing terminator shows. */
	*(size_t *)ctx += strlen(msg) + (size_t)ok;
}

static int make_file(const uint8_t *data, size_t size, char *path, size_t cap)
{
	int fd = memfd_create("rvf_fuzz", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < size) {
		ssize_t w = write(fd, data + done, size - done);
		if (w <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)w;
	}
	snprintf(path, cap, "/proc/self/fd/%d", fd);
	return fd;
}

static void read_everything(const rv_file *f)
{
	const rv_manifest *m = rv_file_manifest(f);
	volatile uint8_t sink = 0;
	for (size_t i = 0; i < m->state_len; i++)
		sink ^= m->state[i];
	for (size_t i = 0; i < m->n_segs; i++) {
		const uint8_t *p;
		rv_err err;
		if (rv_file_segment_data(&p, f, &m->segs[i], &err) != RV_OK)
			abort(); /* every named segment was verified at open */
		for (uint64_t k = 0; k < m->segs[i].length; k++)
			sink ^= p[k];
	}
	(void)sink;
}

static void put_checksum(uint8_t *hdr)
{
	rv_put_u32(hdr + 60, (uint32_t)XXH3_64bits(hdr, 60));
}

/* Recompute the file header checksum and, walking segment headers from
 * offset 64 as a reader would, each content hash and header checksum. */
static void fix_checksums(uint8_t *d, size_t n)
{
	if (n < RV_FILE_HEADER_SIZE)
		return;
	put_checksum(d);
	size_t pos = RV_FILE_HEADER_SIZE;
	while (n - pos >= RV_SEG_HEADER_SIZE) {
		uint8_t *h = d + pos;
		if (rv_get_u32(h) != RV_SEG_MAGIC)
			break;
		uint64_t len = rv_get_u64(h + 16);
		size_t room = n - pos - RV_SEG_HEADER_SIZE;
		if (len <= room) {
			XXH128_hash_t x = XXH3_128bits(h + RV_SEG_HEADER_SIZE, (size_t)len);
			rv_put_u64(h + 40, x.low64);
			rv_put_u64(h + 48, x.high64);
		}
		put_checksum(h);
		if (len > room || ((len + 63) & ~(uint64_t)63) > room)
			break;
		pos += RV_SEG_HEADER_SIZE + (size_t)((len + 63) & ~(uint64_t)63);
	}
}

static void run(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = make_file(data, size, path, sizeof path);
	if (fd < 0)
		return;
	rv_file *f;
	rv_err err;
	if (rv_file_open(&f, path, true, NULL, &err) == RV_OK) {
		read_everything(f);
		rv_file_close(f);
	}
	size_t seen = 0;
	rv_file_verify(path, on_finding, &seen, &err);

	if (rv_file_open(&f, path, false, NULL, &err) == RV_OK) {
		read_everything(f);
		const rv_manifest *m = rv_file_manifest(f);
		uint64_t gen = m->generation;
		size_t n = m->n_segs < 16 ? m->n_segs : 16;
		rv_seg_ref segs[17];
		memcpy(segs, m->segs, n * sizeof *segs);
		static const char payload[] = "fuzz payload";
		rv_manifest next = { gen + 1, 1, (const uint8_t *)"st", 2, segs, n + 1 };
		bool committed = rv_file_append(f, RV_SEG_META, 0, payload, sizeof payload, &segs[n],
						&err) == RV_OK &&
				 rv_file_commit(f, &next, &err) == RV_OK;
		rv_file_close(f);
		if (committed) {
			if (rv_file_open(&f, path, true, NULL, &err) != RV_OK) {
				fprintf(stderr, "reopen after a commit failed: %s\n", err.msg);
				abort();
			}
			m = rv_file_manifest(f);
			if (m->generation != gen + 1 || m->n_segs != n + 1 || m->state_len != 2)
				abort();
			read_everything(f);
			rv_file_close(f);
		}
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size);
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	fix_checksums(copy, size);
	if (size == 0 || memcmp(copy, data, size) != 0)
		run(copy, size);
	free(copy);
	return 0;
}

/*
 * idx2fvecs.c - convert an IDX image file (the MNIST / Fashion-MNIST format,
 * optionally gzip-compressed) into .fvecs, the format the tests and
 * benchmarks read.
 *
 *   idx2fvecs IN.idx3-ubyte[.gz] OUT.fvecs
 *
 * IDX: big-endian header, magic 0x00000803 (unsigned bytes, 3 dimensions),
 * then the three sizes (count, rows, cols), then count*rows*cols bytes.
 * fvecs: per vector a little-endian int32 dimension followed by that many
 * little-endian float32 values. Each pixel becomes its raw value 0..255 as a
 * float, as in ann-benchmarks' fashion-mnist-784-euclidean, so distances
 * match the published ground truth conventions.
 *
 * The output is written to OUT.tmp and renamed, so OUT exists only when
 * complete. zlib's gzread reads plain files too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAGIC_U8_3D 0x00000803u

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* Read exactly n bytes; zlib reports short files and bad streams here. */
static int read_full(gzFile in, void *buf, size_t n, const char *path)
{
	int got = gzread(in, buf, (unsigned)n);
	if (got == (int)n)
		return 0;
	int zerr = 0;
	const char *msg = gzerror(in, &zerr);
	if (got < 0 || zerr != Z_OK)
		fprintf(stderr, "idx2fvecs: %s: %s\n", path, msg);
	else
		fprintf(stderr, "idx2fvecs: %s: truncated (wanted %zu bytes, got %d)\n", path, n,
			got);
	return -1;
}

int main(int argc, char **argv)
{
	int rc = 1;
	gzFile in = NULL;
	FILE *out = NULL;
	unsigned char *row = NULL, *rec = NULL;
	char tmp[4096];

	if (argc != 3) {
		fprintf(stderr, "usage: idx2fvecs IN.idx3-ubyte[.gz] OUT.fvecs\n");
		return 2;
	}
	const char *src = argv[1], *dst = argv[2];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp) {
		fprintf(stderr, "idx2fvecs: output path too long: %s\n", dst);
		return 2;
	}

	in = gzopen(src, "rb");
	if (!in) {
		fprintf(stderr, "idx2fvecs: cannot open %s: %s\n", src, strerror(errno));
		goto done;
	}
	unsigned char hdr[16];
	if (read_full(in, hdr, sizeof hdr, src) != 0)
		goto done;
	uint32_t magic = be32(hdr), count = be32(hdr + 4), rows = be32(hdr + 8),
		 cols = be32(hdr + 12);
	if (magic != IDX_MAGIC_U8_3D) {
		fprintf(stderr, "idx2fvecs: %s: magic 0x%08x is not an IDX file of unsigned bytes "
			"in 3 dimensions (0x%08x)\n", src, magic, IDX_MAGIC_U8_3D);
		goto done;
	}
	if (count == 0 || rows == 0 || cols == 0 || (uint64_t)rows * cols > 16000) {
		fprintf(stderr, "idx2fvecs: %s: bad sizes %u x %u x %u\n", src, count, rows, cols);
		goto done;
	}
	size_t dim = (size_t)rows * cols;
	row = malloc(dim);
	rec = malloc(4 + 4 * dim);
	if (!row || !rec) {
		fprintf(stderr, "idx2fvecs: out of memory\n");
		goto done;
	}
	out = fopen(tmp, "wb");
	if (!out) {
		fprintf(stderr, "idx2fvecs: cannot create %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	put_le32(rec, (uint32_t)dim);
	for (uint32_t i = 0; i < count; i++) {
		if (read_full(in, row, dim, src) != 0)
			goto done;
		for (size_t j = 0; j < dim; j++) {
			float f = (float)row[j];
			uint32_t bits;
			memcpy(&bits, &f, 4);
			put_le32(rec + 4 + 4 * j, bits);
		}
		if (fwrite(rec, 1, 4 + 4 * dim, out) != 4 + 4 * dim) {
			fprintf(stderr, "idx2fvecs: write %s: %s\n", tmp, strerror(errno));
			goto done;
		}
	}
	/* Trailing bytes mean the header lied about the count: refuse. */
	if (gzread(in, row, 1) != 0) {
		fprintf(stderr, "idx2fvecs: %s: data after the %u images the header announces\n",
			src, count);
		goto done;
	}
	if (fclose(out) != 0) {
		out = NULL;
		fprintf(stderr, "idx2fvecs: write %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	out = NULL;
	if (rename(tmp, dst) != 0) {
		fprintf(stderr, "idx2fvecs: rename %s -> %s: %s\n", tmp, dst, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (out) {
		fclose(out);
		remove(tmp);
	} else if (rc != 0) {
		remove(tmp);
	}
	if (in)
		gzclose(in);
	free(rec);
	free(row);
	return rc;
}

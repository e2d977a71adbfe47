/*
 * test_strtof.c - rv_strtof (src/util/strtof.h) against the C library's
 * strtof: the same float to the bit, the same end pointer and the same
 * errno, on seeded random decimals of every shape, on printed floats, on
 * exact ties between two floats (which the fast path must leave to strtof)
 * and on the forms only strtof reads. And the fast path really is taken
 * for the short decimals it exists for.
 */
#include "harness.h"

#include <errno.h>

#include "util/strtof.h"

static uint64_t rng_state = 0x5eed5eedull;

static uint32_t rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng_state >> 33) % n;
}

/* Whether rv_strtof agrees with strtof on s; prints the first difference. */
static bool same(const char *s)
{
	char *e1, *e2;
	errno = 0;
	float a = rv_strtof(s, &e1);
	int err1 = errno;
	errno = 0;
	float b = strtof(s, &e2);
	int err2 = errno;
	uint32_t ba, bb;
	memcpy(&ba, &a, 4);
	memcpy(&bb, &b, 4);
	bool ok = e1 == e2 && err1 == err2 && (ba == bb || (isnan(a) && isnan(b)));
	if (!ok)
		fprintf(stderr, "\"%s\": rv_strtof %a (end +%td, errno %d), strtof %a (end +%td, errno %d)\n", s,
			(double)a, e1 - s, err1, (double)b, e2 - s, err2);
	return ok;
}

/* A random decimal: sign, integer digits, fraction, exponent, each
 * optional, with runs of leading zeros now and then. */
static void random_decimal(char *buf)
{
	char *p = buf;
	switch (rnd(4)) {
	case 0: *p++ = '-'; break;
	case 1: *p++ = '+'; break;
	default: break;
	}
	if (rnd(5) == 0)
		for (uint32_t z = rnd(4); z > 0; z--)
			*p++ = '0';
	for (uint32_t n = rnd(11); n > 0; n--)
		*p++ = (char)('0' + rnd(10));
	if (rnd(4) != 0) {
		*p++ = '.';
		if (rnd(3) == 0)
			for (uint32_t z = rnd(8); z > 0; z--)
				*p++ = '0';
		for (uint32_t n = rnd(13); n > 0; n--)
			*p++ = (char)('0' + rnd(10));
	}
	if (rnd(3) == 0)
		p += sprintf(p, "%c%s%d", rnd(2) ? 'e' : 'E', rnd(2) ? "-" : (rnd(2) ? "+" : ""), (int)rnd(46));
	/* What follows the number: the end pointer must stop there. */
	static const char *const tails[] = { "", ",", "]", " ", "x", "e", "e+", "." };
	strcpy(p, tails[rnd(8)]);
}

TEST(random_decimals)
{
	char buf[128];
	for (int i = 0; i < 1000000; i++) {
		random_decimal(buf);
		CHECK(same(buf));
	}
}

TEST(printed_floats)
{
	/* Every normal and subnormal magnitude, printed as vectors usually
	 * are (6 and 9 significant digits, fixed and shortest-ish forms),
	 * as doubles, and in hex. */
	static const char *const fmts[] = { "%.6g", "%.9g", "%.7f", "%.3e", "%.17g", "%a", "%g" };
	char buf[128];
	for (int i = 0; i < 300000; i++) {
		uint32_t bits = (uint32_t)rnd(1u << 31) | (rnd(2) ? 0x80000000u : 0);
		float f;
		memcpy(&f, &bits, 4);
		if (!isfinite(f))
			continue;
		snprintf(buf, sizeof buf, fmts[rnd(7)], (double)f);
		CHECK(same(buf));
	}
}

TEST(ties_go_to_strtof)
{
	/* Decimals that are exactly halfway between two floats, within the
	 * fast path's digits and exponents: the double is the tie itself,
	 * and only strtof knows the decimal was not above or below it. */
	static const char *const ties[] = {
		"16777217",       /* 2^24 + 1: between 2^24 and 2^24 + 2, to even */
		"-16777219",      /* between 2^24 + 2 and 2^24 + 4 */
		"33554434",       /* 2^25 + 2 */
		"8388608.5",      /* between 2^23 and 2^23 + 1, where floats are whole */
		"1.6777217e7",    /* the first again, another spelling */
		"167772170e-1",
		"0.5000000298023223876953125", /* 0.5 + 2^-25: 25 digits, beyond the fast path */
	};
	for (size_t i = 0; i < sizeof ties / sizeof ties[0]; i++) {
		float f;
		const char *end;
		CHECK_MSG(!rv_strtof_fast(ties[i], &f, &end), "fast path took the tie %s", ties[i]);
		CHECK(same(ties[i]));
	}
	/* Ties to even: the first tie rounds down, the second up. */
	CHECK(rv_strtof("16777217", NULL) == 16777216.0f);
	CHECK(rv_strtof("-16777219", NULL) == -16777220.0f);
}

TEST(other_forms)
{
	static const char *const forms[] = {
		"inf", "-Infinity", "nan", "-nan(123)", "0x1p-3", "0x", "0X1.8P1", "1e", "1e+", "1e-x",
		".e1", ".", "-", "+", "", "   ", " \t\n42", "\v-0.5,", "+.5", "5.", "-0", "-0.0e10", "0e999999",
		"1e39", "-3.5e38", "3.4028235e38", "3.4028236e38", "1e-38", "1e-40", "1.4e-45", "1e-46",
		"9007199254740993", "123456789012345678901234", "0.1234567890123456789", "1e22", "1e23",
		"1.17549435e-38", "00000000000000000000000000001.5", "1,2", "12abc", "nanx", "infinity5",
	};
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
		CHECK(same(forms[i]));
}

TEST(fast_path_is_taken)
{
	/* Elements as text vectors hold them: at most 9 significant digits
	 * and small exponents. A fast path that fell back to strtof on these
	 * would still be correct, and no faster. */
	char buf[64];
	int fast = 0, n = 100000;
	for (int i = 0; i < n; i++) {
		float x = (float)((int)rnd(2000001) - 1000000) / (float)(1 + rnd(100000));
		snprintf(buf, sizeof buf, rnd(2) ? "%.6g" : "%.9g", (double)x);
		float f;
		const char *end;
		if (rv_strtof_fast(buf, &f, &end))
			fast++;
		CHECK(same(buf));
	}
	fprintf(stderr, "   fast path: %d of %d\n", fast, n);
	CHECK(fast >= n * 99 / 100);
}

/*
 * strtof.h - rv_strtof: strtof, faster on the decimals vectors are written
 * in, with the same result to the bit, the same end pointer and the same
 * errno.
 *
 * Text vectors (a SQL literal of 784 numbers, a CSV row) spend most of
 * their parse in strtof, which handles every form (hex, inf, nan, any
 * number of digits) through a general path. Most elements are short
 * decimals: "-0.0123", "3.5e-2", "17". For those, the value is exact in a
 * double (at most 19 significant digits whose integer fits 53 bits, and a
 * power of ten up to 1e22, which doubles hold exactly), so one IEEE
 * multiplication or division gives the decimal correctly rounded to
 * double (Clinger's fast path). Rounding that double to float gives the
 * decimal correctly rounded to float, unless the double landed exactly on
 * a point halfway between two floats: no such halfway point can lie
 * strictly between the decimal and its nearest double (it would be a
 * nearer double), so only the tie itself is ambiguous, and then strtof
 * decides. Every other form (more digits, larger exponents, hex, inf,
 * nan) also goes to strtof.
 *
 * Header-only, so the PostgreSQL module uses it without linking the
 * library. The C locale's decimal point is assumed, as in the callers.
 */
#ifndef RV_STRTOF_H
#define RV_STRTOF_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The fast path: s is whitespace-free at its start. true with *out and
 * *end set when the decimal at s is certainly correctly rounded. */
static inline bool rv_strtof_fast(const char *s, float *out, const char **end)
{
	static const double pow10[23] = { 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
					  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
					  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
	const char *p = s;
	bool neg = *p == '-';
	if (*p == '-' || *p == '+')
		p++;
	uint64_t m = 0;
	int digits = 0, exp10 = 0;
	bool any = false;
	while (*p == '0') {
		p++;
		any = true;
	}
	for (; *p >= '0' && *p <= '9'; p++, any = true) {
		if (++digits > 19)
			return false;
		m = m * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!digits)
			for (; *p == '0'; p++, any = true)
				exp10--;
		for (; *p >= '0' && *p <= '9'; p++, any = true) {
			if (++digits > 19)
				return false;
			m = m * 10 + (uint64_t)(*p - '0');
			exp10--;
		}
	}
	if (!any)
		return false; /* not a decimal: inf, nan, a sign alone, ".", ... */
	if (*p == 'e' || *p == 'E') {
		const char *q = p + 1;
		bool eneg = *q == '-';
		if (*q == '-' || *q == '+')
			q++;
		if (*q < '0' || *q > '9')
			return false; /* "1e": strtof stops before the e */
		int e = 0;
		for (; *q >= '0' && *q <= '9'; q++) {
			if (e > 9999)
				return false;
			e = e * 10 + (*q - '0');
		}
		exp10 += eneg ? -e : e;
		p = q;
	}
	/* Hex floats ("0x1p3") start like a zero: strtof reads them whole. */
	if (*p == 'x' || *p == 'X')
		return false;
	if (m == 0) {
		*out = neg ? -0.0f : 0.0f;
		*end = p;
		return true;
	}
	/* Within these bounds the value lies in [1e-22, 9.1e37]: a normal
	 * float, never an overflow or an underflow, so errno stays as strtof
	 * would leave it. */
	if (m > (UINT64_C(1) << 53) || exp10 < -22 || exp10 > 22)
		return false;
	double d = (double)m;
	d = exp10 < 0 ? d / pow10[-exp10] : d * pow10[exp10];
	float f = (float)d;
	/* A double exactly halfway between two floats: its 29 bits below
	 * float's 24-bit significand are 1 followed by zeros. */
	uint64_t bits;
	memcpy(&bits, &d, sizeof bits);
	if ((bits & ((UINT64_C(1) << 29) - 1)) == (UINT64_C(1) << 28))
		return false;
	*out = neg ? -f : f;
	*end = p;
	return true;
}

/* strtof(s, end), the same result, end and errno. */
static inline float rv_strtof(const char *s, char **end)
{
	const char *p = s;
	while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
		p++;
	float f;
	const char *e;
	if (rv_strtof_fast(p, &f, &e)) {
		if (end)
			*end = (char *)(uintptr_t)e;
		return f;
	}
	return strtof(s, end);
}

#endif /* RV_STRTOF_H */

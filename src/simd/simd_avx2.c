/*
 * simd_avx2.c - AVX2 + FMA kernels. Built with -mavx2 -mfma; called only
 * when the CPU reports both (see dispatch.c). Two 8-wide accumulators hide
 * the FMA latency; the tail is masked so no element is read twice.
 *
 * The integer kernels widen int8 to int16 and use vpmaddwd, whose pairwise
 * int32 sums cannot overflow (2 * 128 * 128 and 2 * 255 * 255 both fit),
 * so they are exact for every input including -128. Hamming counts bits
 * with the nibble lookup table (vpshufb on each half byte, vpsadbw to add
 * the bytes up); the product-quantization kernel gathers eight table
 * entries per step. Tails shorter than a vector go through the scalar
 * kernels, which give the same integers.
 */
#include "simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>

static inline float hsum256(__m256 v)
{
	__m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
	lo = _mm_add_ps(lo, hi);
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

static inline __m256i tail_mask(size_t r)
{
	static const int m[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
	return _mm256_loadu_si256((const __m256i *)(m + 8 - r));
}

float rv_l2sq_avx2(const float *a, const float *b, size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
	}
	for (; i + 8 <= n; i += 8) {
		__m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		s0 = _mm256_fmadd_ps(d, d, s0);
	}
	if (i < n) {
		__m256i m = tail_mask(n - i);
		__m256 d = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
		s1 = _mm256_fmadd_ps(d, d, s1);
	}
	return hsum256(_mm256_add_ps(s0, s1));
}

float rv_dot_avx2(const float *a, const float *b, size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	if (i < n) {
		__m256i m = tail_mask(n - i);
		s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
	}
	return hsum256(_mm256_add_ps(s0, s1));
}

static inline int32_t hsum256_epi32(__m256i v)
{
	__m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
	x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm_cvtsi128_si32(x);
}

void rv_axpy_avx2(float *y, float a, const float *x, size_t n)
{
	__m256 va = _mm256_set1_ps(a);
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, _mm256_loadu_ps(x + i))));
	if (i < n) {
		__m256i m = tail_mask(n - i);
		__m256 r = _mm256_add_ps(_mm256_maskload_ps(y + i, m), _mm256_mul_ps(va, _mm256_maskload_ps(x + i, m)));
		_mm256_maskstore_ps(y + i, m, r);
	}
}

int32_t rv_i8dot_avx2(const int8_t *a, const int8_t *b, size_t n)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
		__m256i y0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
		__m256i x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i + 16)));
		__m256i y1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i + 16)));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x0, y0));
		s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(x1, y1));
	}
	if (i + 16 <= n) {
		__m256i x = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
		__m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x, y));
		i += 16;
	}
	int32_t s = hsum256_epi32(_mm256_add_epi32(s0, s1));
	return i < n ? s + rv_i8dot_scalar(a + i, b + i, n - i) : s;
}

/* Widened to int16 on both sides (zero- and sign-extended) before the
 * multiply-add: vpmaddubsw would saturate 255 * 127 * 2. */
int32_t rv_u8i8dot_avx2(const uint8_t *u, const int8_t *s, size_t n)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m256i x0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(u + i)));
		__m256i y0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(s + i)));
		__m256i x1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(u + i + 16)));
		__m256i y1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(s + i + 16)));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x0, y0));
		s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(x1, y1));
	}
	if (i + 16 <= n) {
		__m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(u + i)));
		__m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(s + i)));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x, y));
		i += 16;
	}
	int32_t t = hsum256_epi32(_mm256_add_epi32(s0, s1));
	return i < n ? t + rv_u8i8dot_scalar(u + i, s + i, n - i) : t;
}

int32_t rv_i8l2sq_avx2(const int8_t *a, const int8_t *b, size_t n)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m256i d0 = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i))),
					      _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i))));
		__m256i d1 = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i + 16))),
					      _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i + 16))));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(d0, d0));
		s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(d1, d1));
	}
	if (i + 16 <= n) {
		__m256i d = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i))),
					     _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i))));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(d, d));
		i += 16;
	}
	int32_t s = hsum256_epi32(_mm256_add_epi32(s0, s1));
	return i < n ? s + rv_i8l2sq_scalar(a + i, b + i, n - i) : s;
}

/* Every CPU with AVX2 has POPCNT, but -mavx2 does not enable it; the
 * attribute lets the tail use the instruction instead of a libgcc call
 * (short codes, e.g. 128 bits = 16 bytes, are all tail). */
__attribute__((target("popcnt")))
uint64_t rv_hamming_avx2(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
					     0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
	const __m256i low4 = _mm256_set1_epi8(0x0f);
	__m256i acc = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 32 <= nbytes; i += 32) {
		__m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + i)),
					     _mm256_loadu_si256((const __m256i *)(b + i)));
		__m256i lo = _mm256_and_si256(x, low4);
		__m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
		/* Per-byte counts are at most 8, so adding two stays in a byte;
		 * vpsadbw then folds each 8 bytes into a 64-bit lane. */
		__m256i cnt = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
		acc = _mm256_add_epi64(acc, _mm256_sad_epu8(cnt, _mm256_setzero_si256()));
	}
	__m128i x = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
	uint64_t s = (uint64_t)_mm_cvtsi128_si64(x) + (uint64_t)_mm_extract_epi64(x, 1);
	for (; i + 8 <= nbytes; i += 8) {
		uint64_t u, v;
		memcpy(&u, a + i, 8);
		memcpy(&v, b + i, 8);
		s += (uint64_t)_mm_popcnt_u64(u ^ v);
	}
	for (; i < nbytes; i++)
		s += (uint64_t)_mm_popcnt_u32((unsigned)(a[i] ^ b[i]));
	return s;
}

float rv_pq_adc_avx2(const float *tables, const uint8_t *codes, size_t m)
{
	/* Lane k reads table j + k: its entries start 256 * k floats later. */
	const __m256i lane = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t j = 0;
	for (; j + 16 <= m; j += 16) {
		__m256i i0 = _mm256_add_epi32(lane, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(codes + j))));
		__m256i i1 = _mm256_add_epi32(lane, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(codes + j + 8))));
		s0 = _mm256_add_ps(s0, _mm256_i32gather_ps(tables + j * 256, i0, 4));
		s1 = _mm256_add_ps(s1, _mm256_i32gather_ps(tables + (j + 8) * 256, i1, 4));
	}
	if (j + 8 <= m) {
		__m256i i0 = _mm256_add_epi32(lane, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(codes + j))));
		s0 = _mm256_add_ps(s0, _mm256_i32gather_ps(tables + j * 256, i0, 4));
		j += 8;
	}
	float s = hsum256(_mm256_add_ps(s0, s1));
	return j < m ? s + rv_pq_adc_scalar(tables + j * 256, codes + j, m - j) : s;
}
#endif

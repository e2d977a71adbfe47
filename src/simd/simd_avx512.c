/*
 * simd_avx512.c - AVX-512F kernels. Built with -mavx512f; called only when
 * the CPU and the OS (XCR0 opmask/ZMM state) support it. The tail uses a
 * mask register, so there is no scalar loop.
 *
 * The int8 kernels need AVX512BW (byte loads and widening); dispatch.c
 * installs them only when the CPU has it. Two variants each:
 *  - plain BW: widen to int16, vpmaddwd, 32 elements a step;
 *  - VNNI: the dot product runs vpdpbusd, which multiplies *unsigned* by
 *    signed bytes, on a + 128 (a XOR 0x80): sum (a+128) b = sum a b +
 *    128 sum b, and a second vpdpbusd against all-ones bytes gives sum b
 *    to subtract. 64 elements a step, exact for every input including
 *    -128 (each int32 lane gathers at most 4 * 255 * 128 per step). The
 *    squared L2 needs |a - b| up to 255, beyond a byte, so it widens to
 *    int16 and uses vpdpwssd.
 * Hamming with AVX512_VPOPCNTDQ counts 64 bytes a step with vpopcntq;
 * that instruction gets its target through a function attribute, so the
 * file needs no extra flag. Without it dispatch.c uses the AVX2 kernel.
 * The product-quantization kernel gathers 16 table entries a step.
 */
#include "simd.h"

#if defined(__x86_64__)
#include <immintrin.h>

float rv_l2sq_avx512(const float *a, const float *b, size_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		__m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
		s0 = _mm512_fmadd_ps(d0, d0, s0);
		s1 = _mm512_fmadd_ps(d1, d1, s1);
	}
	for (; i + 16 <= n; i += 16) {
		__m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		s0 = _mm512_fmadd_ps(d, d, s0);
	}
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		__m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
		s1 = _mm512_fmadd_ps(d, d, s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

float rv_dot_avx512(const float *a, const float *b, size_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

void rv_axpy_avx512(float *y, float a, const float *x, size_t n)
{
	__m512 va = _mm512_set1_ps(a);
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_mul_ps(va, _mm512_loadu_ps(x + i))));
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		__m512 r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, x + i)));
		_mm512_mask_storeu_ps(y + i, m, r);
	}
}

int32_t rv_i8dot_avx512(const int8_t *a, const int8_t *b, size_t n)
{
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		__m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i)));
		__m512i y0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i)));
		__m512i x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i + 32)));
		__m512i y1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i + 32)));
		s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(x0, y0));
		s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(x1, y1));
	}
	for (; i < n; i += 32) {
		size_t r = n - i < 32 ? n - i : 32;
		__mmask32 m = (__mmask32)(r == 32 ? 0xffffffffu : (1u << r) - 1);
		__m512i x = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, a + i));
		__m512i y = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, b + i));
		s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(x, y));
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

int32_t rv_i8l2sq_avx512(const int8_t *a, const int8_t *b, size_t n)
{
	__m512i s0 = _mm512_setzero_si512();
	for (size_t i = 0; i < n; i += 32) {
		size_t r = n - i < 32 ? n - i : 32;
		__mmask32 m = (__mmask32)(r == 32 ? 0xffffffffu : (1u << r) - 1);
		__m512i d = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, a + i)),
					     _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, b + i)));
		s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(d, d));
	}
	return _mm512_reduce_add_epi32(s0);
}

static inline __mmask64 mask64(size_t r)
{
	return r >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << r) - 1);
}

int32_t rv_i8dot_avx512_vnni(const int8_t *a, const int8_t *b, size_t n)
{
	const __m512i bias = _mm512_set1_epi8((char)0x80), ones = _mm512_set1_epi8(1);
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512(), sb = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 128 <= n; i += 128) {
		__m512i y0 = _mm512_loadu_si512(b + i), y1 = _mm512_loadu_si512(b + i + 64);
		s0 = _mm512_dpbusd_epi32(s0, _mm512_xor_si512(_mm512_loadu_si512(a + i), bias), y0);
		s1 = _mm512_dpbusd_epi32(s1, _mm512_xor_si512(_mm512_loadu_si512(a + i + 64), bias), y1);
		sb = _mm512_dpbusd_epi32(sb, ones, y0);
		sb = _mm512_dpbusd_epi32(sb, ones, y1);
	}
	for (; i < n; i += 64) {
		/* Masked-off lanes load b = 0, so a's lanes there add nothing. */
		__mmask64 m = mask64(n - i);
		__m512i y = _mm512_maskz_loadu_epi8(m, b + i);
		s0 = _mm512_dpbusd_epi32(s0, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, a + i), bias), y);
		sb = _mm512_dpbusd_epi32(sb, ones, y);
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1)) - 128 * _mm512_reduce_add_epi32(sb);
}

/* u as the unsigned operand of vpdpbusd as it is: one instruction per 64
 * bytes, exact (each 4-byte group adds at most 4 * 255 * 128 to int32). */
int32_t rv_u8i8dot_avx512_vnni(const uint8_t *u, const int8_t *s, size_t n)
{
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 128 <= n; i += 128) {
		s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(u + i), _mm512_loadu_si512(s + i));
		s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(u + i + 64), _mm512_loadu_si512(s + i + 64));
	}
	for (; i < n; i += 64) {
		/* Masked-off lanes load 0 on both sides. */
		__mmask64 m = mask64(n - i);
		s0 = _mm512_dpbusd_epi32(s0, _mm512_maskz_loadu_epi8(m, u + i), _mm512_maskz_loadu_epi8(m, s + i));
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

int32_t rv_u8i8dot_avx512(const uint8_t *u, const int8_t *s, size_t n)
{
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		__m512i x0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(u + i)));
		__m512i y0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(s + i)));
		__m512i x1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(u + i + 32)));
		__m512i y1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(s + i + 32)));
		s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(x0, y0));
		s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(x1, y1));
	}
	for (; i < n; i += 32) {
		size_t r = n - i < 32 ? n - i : 32;
		__mmask32 m = (__mmask32)(r == 32 ? 0xffffffffu : (1u << r) - 1);
		__m512i x = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, u + i));
		__m512i y = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, s + i));
		s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(x, y));
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

int32_t rv_i8l2sq_avx512_vnni(const int8_t *a, const int8_t *b, size_t n)
{
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		__m512i d0 = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i))),
					      _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i))));
		__m512i d1 = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i + 32))),
					      _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i + 32))));
		s0 = _mm512_dpwssd_epi32(s0, d0, d0);
		s1 = _mm512_dpwssd_epi32(s1, d1, d1);
	}
	for (; i < n; i += 32) {
		size_t r = n - i < 32 ? n - i : 32;
		__mmask32 m = (__mmask32)(r == 32 ? 0xffffffffu : (1u << r) - 1);
		__m512i d = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, a + i)),
					     _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, b + i)));
		s0 = _mm512_dpwssd_epi32(s0, d, d);
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

__attribute__((target("avx512vpopcntdq")))
uint64_t rv_hamming_avx512_vpopcnt(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 128 <= nbytes; i += 128) {
		s0 = _mm512_add_epi64(s0, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(a + i),
									     _mm512_loadu_si512(b + i))));
		s1 = _mm512_add_epi64(s1, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(a + i + 64),
									     _mm512_loadu_si512(b + i + 64))));
	}
	for (; i < nbytes; i += 64) {
		__mmask64 m = mask64(nbytes - i);
		s0 = _mm512_add_epi64(s0, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_maskz_loadu_epi8(m, a + i),
									     _mm512_maskz_loadu_epi8(m, b + i))));
	}
	return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(s0, s1));
}

float rv_pq_adc_avx512(const float *tables, const uint8_t *codes, size_t m)
{
	/* Lane k reads table j + k: its entries start 256 * k floats later. */
	const __m512i lane = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
						_mm512_set1_epi32(256));
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	size_t j = 0;
	for (; j + 32 <= m; j += 32) {
		__m512i i0 = _mm512_add_epi32(lane, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(codes + j))));
		__m512i i1 = _mm512_add_epi32(lane, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(codes + j + 16))));
		s0 = _mm512_add_ps(s0, _mm512_i32gather_ps(i0, tables + j * 256, 4));
		s1 = _mm512_add_ps(s1, _mm512_i32gather_ps(i1, tables + (j + 16) * 256, 4));
	}
	for (; j < m; j += 16) {
		/* Masked-off lanes are neither loaded nor gathered. */
		size_t r = m - j < 16 ? m - j : 16;
		__mmask16 k = (__mmask16)(r == 16 ? 0xffffu : (1u << r) - 1);
		__m512i ix = _mm512_add_epi32(lane, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, codes + j)));
		s0 = _mm512_add_ps(s0, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, ix, tables + j * 256, 4));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
#endif

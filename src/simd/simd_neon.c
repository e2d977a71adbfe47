/*
 * simd_neon.c - AArch64 Advanced SIMD kernels. NEON is part of the base
 * AArch64 architecture, so no flags and no runtime check are needed; on
 * every other target this file compiles to nothing.
 *
 * int8: vmull_s8 forms the 16 products of 8 byte pairs in int16 (|a b| <=
 * 16384 fits), vpadalq_s16 folds them pairwise into int32 lanes. The
 * squared L2 widens the difference to int16 (vsubl_s8) and accumulates its
 * square in int32 with vmlal_s16. Hamming counts bits per byte with vcntq_u8.
 * There is no gather, so the product-quantization kernel is the unrolled
 * scalar loop. Tails go through the scalar kernels: the integer results are
 * the same bit for bit.
 */
#include "simd.h"

#if defined(__aarch64__)
#include <arm_neon.h>

float rv_l2sq_neon(const float *a, const float *b, size_t n)
{
	float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		float32x4_t d0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
		float32x4_t d1 = vsubq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
		s0 = vfmaq_f32(s0, d0, d0);
		s1 = vfmaq_f32(s1, d1, d1);
	}
	float s = vaddvq_f32(vaddq_f32(s0, s1));
	for (; i < n; i++) {
		float d = a[i] - b[i];
		s += d * d;
	}
	return s;
}

float rv_dot_neon(const float *a, const float *b, size_t n)
{
	float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
		s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
	}
	float s = vaddvq_f32(vaddq_f32(s0, s1));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

int32_t rv_i8dot_neon(const int8_t *a, const int8_t *b, size_t n)
{
	int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		int8x16_t x = vld1q_s8(a + i), y = vld1q_s8(b + i);
		s0 = vpadalq_s16(s0, vmull_s8(vget_low_s8(x), vget_low_s8(y)));
		s1 = vpadalq_s16(s1, vmull_high_s8(x, y));
	}
	int32_t s = vaddvq_s32(vaddq_s32(s0, s1));
	return i < n ? s + rv_i8dot_scalar(a + i, b + i, n - i) : s;
}

int32_t rv_u8i8dot_neon(const uint8_t *u, const int8_t *s, size_t n)
{
	int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		/* Levels 0..255 fit int16 as they are. */
		uint8x16_t x = vld1q_u8(u + i);
		int8x16_t y = vld1q_s8(s + i);
		int16x8_t xl = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(x)));
		int16x8_t xh = vreinterpretq_s16_u16(vmovl_high_u8(x));
		int16x8_t yl = vmovl_s8(vget_low_s8(y)), yh = vmovl_high_s8(y);
		s0 = vmlal_s16(s0, vget_low_s16(xl), vget_low_s16(yl));
		s1 = vmlal_high_s16(s1, xl, yl);
		s0 = vmlal_s16(s0, vget_low_s16(xh), vget_low_s16(yh));
		s1 = vmlal_high_s16(s1, xh, yh);
	}
	int32_t t = vaddvq_s32(vaddq_s32(s0, s1));
	return i < n ? t + rv_u8i8dot_scalar(u + i, s + i, n - i) : t;
}

int32_t rv_i8l2sq_neon(const int8_t *a, const int8_t *b, size_t n)
{
	int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		int8x16_t x = vld1q_s8(a + i), y = vld1q_s8(b + i);
		int16x8_t d0 = vsubl_s8(vget_low_s8(x), vget_low_s8(y));
		int16x8_t d1 = vsubl_high_s8(x, y);
		s0 = vmlal_s16(s0, vget_low_s16(d0), vget_low_s16(d0));
		s1 = vmlal_high_s16(s1, d0, d0);
		s0 = vmlal_s16(s0, vget_low_s16(d1), vget_low_s16(d1));
		s1 = vmlal_high_s16(s1, d1, d1);
	}
	int32_t s = vaddvq_s32(vaddq_s32(s0, s1));
	return i < n ? s + rv_i8l2sq_scalar(a + i, b + i, n - i) : s;
}

uint64_t rv_hamming_neon(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	uint64_t s = 0;
	size_t i = 0;
	for (; i + 16 <= nbytes; i += 16)
		s += vaddlvq_u8(vcntq_u8(veorq_u8(vld1q_u8(a + i), vld1q_u8(b + i))));
	return i < nbytes ? s + rv_hamming_scalar(a + i, b + i, nbytes - i) : s;
}

float rv_pq_adc_neon(const float *tables, const uint8_t *codes, size_t m)
{
	return rv_pq_adc_scalar(tables, codes, m);
}
#endif

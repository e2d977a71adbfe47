/*
 * format.h - constants of the .rvf file format. docs/FORMAT.md is the
 * byte-by-byte specification; this header and that page change together.
 *
 * All integers little-endian. Offsets below are within the 64-byte block.
 *
 * File header (offset 0 of the file, 64 bytes):
 *   0  u8[8]  magic "RUVECTOR"
 *   8  u16    read version   (a reader must understand this to read)
 *  10  u16    write version  (a writer must understand this to append)
 *  12  u32    header length  (64)
 *  16  u64    required feature bits (unknown bit set: refuse); bit 0
 *             (RV_FEATURE_QUANT): quantized collection
 *  24  u64    optional feature bits (unknown bits ignored)
 *  32  u64    created, ns since the Unix epoch
 *  40  u8[16] file id (random)
 *  56  u32    reserved (0)
 *  60  u32    checksum: low 32 bits of XXH3-64 of bytes 0..59
 *
 * Segment header (64 bytes, at a 64-byte aligned offset):
 *   0  u32    magic "RVFS" (0x53465652 read as little-endian u32)
 *   4  u8     header version (1)
 *   5  u8     segment type (RV_SEG_*)
 *   6  u16    flags (RV_SEGF_*)
 *   8  u64    segment id
 *  16  u64    payload length (bytes, without padding)
 *  24  u64    timestamp, ns since the Unix epoch
 *  32  u8     checksum algorithm (RV_CSUM_*)
 *  33  u8     compression (0 = none)
 *  34  u16    reserved (0)
 *  36  u32    uncompressed length (0 when not compressed)
 *  40  u8[16] content hash of the payload (XXH3-128, little-endian low|high)
 *  56  u32    reserved (0)
 *  60  u32    header checksum: low 32 bits of XXH3-64 of bytes 0..59
 * then the payload, then zeros to the next multiple of 64. Reserved fields
 * are written as 0 and ignored by readers of this version (the header
 * checksum covers them). Segment ids start at 1 and strictly increase
 * along the file.
 *
 * MANIFEST payload (segment type RV_SEG_MANIFEST), offsets in the payload:
 *   0  u32    magic "RVMF" (0x464d5652 read as little-endian u32)
 *   4  u16    manifest layout version (1)
 *   6  u16    reserved (0)
 *   8  u64    generation (>= 1; +1 per commit)
 *  16  u64    timestamp, ns since the Unix epoch
 *  24  u64    file offset of the previous manifest's header (0: none)
 *  32  u64    state length S
 *  40  u8[S]  state (opaque to the store; the collection's encoding)
 *      u64    segment count N
 *      N x 32-byte entries:
 *        0  u8     segment type
 *        1  u8[7]  reserved (0)
 *        8  u64    segment id
 *       16  u64    file offset of the segment's header
 *       24  u64    payload length
 *      u32    extension count E
 *      E x extension: u32 tag, u32 flags (bit 0: required), u64 length L,
 *                     u8[L] bytes. Unknown optional extensions are skipped;
 *                     an unknown required one refuses the file.
 * The payload ends exactly after the last extension.
 *
 * Commit point: a MANIFEST segment is written payload first (its header
 * slot left zero), fsync, then its 64-byte header, fsync. A valid
 * MANIFEST header therefore implies that everything before it reached
 * the disk; docs/FORMAT.md derives the open/recovery rule from this.
 */
#ifndef RV_FORMAT_H
#define RV_FORMAT_H

#define RV_FILE_MAGIC "RUVECTOR"
#define RV_FILE_HEADER_SIZE 64
#define RV_FORMAT_READ_VERSION 1
#define RV_FORMAT_WRITE_VERSION 1
/* Required feature bit 0: the collection is quantized (a QUANT segment
 * holds its quantizer; docs/FORMAT.md, "QUANT segment"). A reader that
 * ignored it would search on floats and its writes would drop the
 * quantizer, so older builds must refuse the file. */
#define RV_FEATURE_QUANT 0x1ull
#define RV_FEATURES_REQUIRED_KNOWN RV_FEATURE_QUANT
#define RV_FEATURES_OPTIONAL_KNOWN 0ull

#define RV_SEG_MAGIC 0x53465652u /* "RVFS" */
#define RV_SEG_HEADER_SIZE 64
#define RV_SEG_HEADER_VERSION 1
#define RV_SEG_ALIGN 64
#define RV_SEG_MAX_PAYLOAD (1ull << 40) /* largest payload rv_file_append accepts */

#define RV_MANIFEST_MAGIC 0x464d5652u /* "RVMF" */
#define RV_MANIFEST_VERSION 1
#define RV_MANIFEST_FIXED_SIZE 40 /* bytes before the state */
#define RV_MANIFEST_ENTRY_SIZE 32
#define RV_MANIFEST_EXT_REQUIRED 0x1u

/* Segment types: ids as in the published RVF spec. */
enum {
	RV_SEG_VEC = 0x01,
	RV_SEG_INDEX = 0x02,
	RV_SEG_OVERLAY = 0x03,
	RV_SEG_JOURNAL = 0x04,
	RV_SEG_MANIFEST = 0x05,
	RV_SEG_QUANT = 0x06,
	RV_SEG_META = 0x07,
	RV_SEG_HOT = 0x08,
	RV_SEG_SKETCH = 0x09,
	RV_SEG_WITNESS = 0x0A,
	RV_SEG_PROFILE = 0x0B,
	RV_SEG_CRYPTO = 0x0C,
	RV_SEG_META_IDX = 0x0D,
	RV_SEG_KERNEL = 0x0E,
	RV_SEG_EBPF = 0x0F,
	RV_SEG_WASM = 0x10,
	RV_SEG_COW_MAP = 0x20,
	RV_SEG_REFCOUNT = 0x21,
	RV_SEG_MEMBERSHIP = 0x22,
	RV_SEG_DELTA = 0x23
};

/* Segment flags (as in the RVF spec). */
enum {
	RV_SEGF_COMPRESSED = 0x0001,
	RV_SEGF_CHECKPOINT = 0x0200
};

enum {
	RV_CSUM_XXH3_128 = 1,
	RV_CSUM_SHAKE256 = 2
};

/* "VEC", "INDEX", ... or "UNKNOWN". */
const char *rv_seg_type_name(unsigned type);

#endif /* RV_FORMAT_H */

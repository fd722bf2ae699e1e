/* atheria/snapshot.h — the snapshot file format (docs/snapshots.md), version 1.
 *
 *   header   8 B magic "ATHSNAP\0" | u32 version | u32 flags (0) | u64 body length L
 *   body     sections, each: u32 name length | name (UTF-8, <= 256 B) | u8 type
 *              type 0 (JSON):  u64 n | n bytes of UTF-8 JSON           (the one "meta" section)
 *              type 1 (array): u8 dtype | u8 ndim (<= 8) | ndim x u64 shape | u64 nbytes | data (C order)
 *   trailer  u32 CRC-32 (zlib polynomial) of header + body | 8 B end magic "ATHSEND\0"
 * All integers little-endian.  dtype codes: ATH_SNAP_* below.
 *
 * What the sections hold (engine options, matter or grid, step, model, memory) is
 * the Python layer's business (python/atheria_core/_engines.py); this is the
 * container, so both backends read and write the same bytes.  A parse never
 * reads outside the buffer and reports why a buffer is refused. */
#ifndef ATHERIA_SNAPSHOT_H
#define ATHERIA_SNAPSHOT_H

#include "atheria/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATH_SNAPSHOT_VERSION 1u
#define ATH_SNAPSHOT_MAX_NAME 256
#define ATH_SNAPSHOT_MAX_NDIM 8

typedef enum ath_snap_dtype {
    ATH_SNAP_I64 = 1,
    ATH_SNAP_F32 = 2,
    ATH_SNAP_C64 = 3,
    ATH_SNAP_F64 = 4,
    ATH_SNAP_U8 = 5
} ath_snap_dtype;

/* Why a buffer was refused (ATH_SNAP_FINE when it was not). */
typedef enum ath_snap_problem {
    ATH_SNAP_FINE = 0,
    ATH_SNAP_TRUNCATED,
    ATH_SNAP_CORRUPT,
    ATH_SNAP_FOREIGN,
    ATH_SNAP_NEWER
} ath_snap_problem;
const char *ath_snap_problem_name(ath_snap_problem p); /* "truncated", "corrupt", ... */

typedef struct ath_snap_section {
    char name[ATH_SNAPSHOT_MAX_NAME + 1];
    int is_json;
    int dtype;                           /* arrays: ath_snap_dtype */
    int ndim;
    int64_t shape[ATH_SNAPSHOT_MAX_NDIM];
    const unsigned char *data;           /* into the parsed buffer (not aligned) */
    size_t nbytes;
} ath_snap_section;

/* zlib's CRC-32 of n bytes, continuing from crc (start with 0). */
uint32_t ath_crc32(uint32_t crc, const void *data, size_t n);
/* Bytes per element of a dtype code, 0 if unknown. */
size_t ath_snap_dtype_size(int dtype);

/* Parses buf (not copied: the sections point into it).  On success *sections is an
 * ath_malloc'ed array of *n_sections (free with ath_free).  On failure *problem says
 * why and err names `source` and the cause (ATH_ERR_IO; ATH_ERR_NOMEM). */
ath_status ath_snapshot_parse(const void *buf, size_t len, const char *source, ath_snap_section **sections,
                              size_t *n_sections, ath_snap_problem *problem, ath_error *err);

/* Builds a file in memory: sections in the given order (the meta JSON first by
 * convention).  *out is ath_malloc'ed (free with ath_free). */
ath_status ath_snapshot_encode(const ath_snap_section *sections, size_t n_sections, unsigned char **out,
                               size_t *out_len, ath_error *err);

/* Writes len bytes to path atomically: a temporary file in the same directory,
 * fsync, rename over path, fsync of the directory.  On failure path is untouched. */
ath_status ath_snapshot_write_file(const char *path, const void *data, size_t len, ath_error *err);
/* Reads a whole file (ath_malloc'ed *out). */
ath_status ath_snapshot_read_file(const char *path, unsigned char **out, size_t *out_len, ath_error *err);

#ifdef __cplusplus
}
#endif
#endif

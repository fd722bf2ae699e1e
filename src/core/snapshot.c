/* The snapshot container (atheria/snapshot.h): encode, parse with bounds
 * checks, atomic file writes. */
#include "atheria/snapshot.h"

#include "atheria/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char MAGIC[8] = {'A', 'T', 'H', 'S', 'N', 'A', 'P', 0};
static const unsigned char END_MAGIC[8] = {'A', 'T', 'H', 'S', 'E', 'N', 'D', 0};
#define HEADER_SIZE 24u
#define TRAILER_SIZE 12u

const char *ath_snap_problem_name(ath_snap_problem p) {
    switch (p) {
    case ATH_SNAP_FINE: return "fine";
    case ATH_SNAP_TRUNCATED: return "truncated";
    case ATH_SNAP_CORRUPT: return "corrupt";
    case ATH_SNAP_FOREIGN: return "foreign";
    case ATH_SNAP_NEWER: return "newer";
    }
    return "corrupt";
}

uint32_t ath_crc32(uint32_t crc, const void *data, size_t n) {
    /* bitwise (no table: no global state); snapshots are written rarely */
    const unsigned char *p = (const unsigned char *)data;
    size_t i;
    int k;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

size_t ath_snap_dtype_size(int dtype) {
    switch (dtype) {
    case ATH_SNAP_I64: return 8;
    case ATH_SNAP_F32: return 4;
    case ATH_SNAP_C64: return 8;
    case ATH_SNAP_F64: return 8;
    case ATH_SNAP_U8: return 1;
    default: return 0;
    }
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }
static void wr32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static void wr64(unsigned char *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static ath_status refuse(ath_snap_problem *problem, ath_snap_problem p, ath_error *err, const char *source,
                         const char *cause) {
    if (problem) *problem = p;
    return ath_error_set(err, ATH_ERR_IO, "snapshot %s: %s", source ? source : "<bytes>", cause);
}

ath_status ath_snapshot_parse(const void *buf, size_t len, const char *source, ath_snap_section **sections,
                              size_t *n_sections, ath_snap_problem *problem, ath_error *err) {
    const unsigned char *b = (const unsigned char *)buf;
    uint64_t body;
    uint32_t version, flags;
    size_t pos, stop, n = 0, cap = 8;
    ath_snap_section *sec;
    char msg[160];
    int have_meta = 0;
    if (problem) *problem = ATH_SNAP_FINE;
    if (sections == NULL || n_sections == NULL || (buf == NULL && len > 0))
        return ath_error_set(err, ATH_ERR_INVALID, "snapshot parse: NULL argument");
    if (len < 8 || memcmp(b, MAGIC, 8) != 0) {
        if (len > 0 && len < 8 && memcmp(b, MAGIC, len) == 0)
            return refuse(problem, ATH_SNAP_TRUNCATED, err, source, "truncated (shorter than the header)");
        return refuse(problem, ATH_SNAP_FOREIGN, err, source, "not an atheria_core snapshot (bad magic bytes)");
    }
    if (len < HEADER_SIZE) return refuse(problem, ATH_SNAP_TRUNCATED, err, source, "truncated (shorter than the header)");
    version = rd32(b + 8);
    flags = rd32(b + 12);
    body = rd64(b + 16);
    if (version > ATH_SNAPSHOT_VERSION) {
        snprintf(msg, sizeof msg, "format version %u is newer than this atheria_core reads (%u); upgrade atheria_core",
                 version, ATH_SNAPSHOT_VERSION);
        return refuse(problem, ATH_SNAP_NEWER, err, source, msg);
    }
    if (version < 1) return refuse(problem, ATH_SNAP_CORRUPT, err, source, "invalid format version 0");
    if (body > (uint64_t)len || (uint64_t)len - body < HEADER_SIZE + TRAILER_SIZE) {
        snprintf(msg, sizeof msg, "truncated: %zu bytes, the header announces %llu", len,
                 (unsigned long long)(body + HEADER_SIZE + TRAILER_SIZE));
        return refuse(problem, ATH_SNAP_TRUNCATED, err, source, msg);
    }
    if ((uint64_t)len - body > HEADER_SIZE + TRAILER_SIZE)
        return refuse(problem, ATH_SNAP_CORRUPT, err, source, "unexpected bytes after the end of the snapshot");
    stop = HEADER_SIZE + (size_t)body;
    if (memcmp(b + stop + 4, END_MAGIC, 8) != 0) return refuse(problem, ATH_SNAP_CORRUPT, err, source, "bad end marker");
    if (ath_crc32(0, b, stop) != rd32(b + stop))
        return refuse(problem, ATH_SNAP_CORRUPT, err, source, "checksum mismatch (CRC-32): the file is damaged");
    if (flags != 0) return refuse(problem, ATH_SNAP_NEWER, err, source, "unknown flags (written by a newer atheria_core?)");
    sec = (ath_snap_section *)ath_malloc(cap * sizeof *sec);
    if (sec == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "snapshot parse: out of memory");
#define NEED(k)                                                                                     \
    do {                                                                                            \
        if ((size_t)(k) > stop - pos) {                                                             \
            ath_free(sec);                                                                          \
            return refuse(problem, ATH_SNAP_CORRUPT, err, source, "a section runs past the end of the body"); \
        }                                                                                           \
    } while (0)
#define BAD(cause)                                                                                  \
    do {                                                                                            \
        ath_free(sec);                                                                              \
        return refuse(problem, ATH_SNAP_CORRUPT, err, source, cause);                               \
    } while (0)
    pos = HEADER_SIZE;
    while (pos < stop) {
        ath_snap_section s;
        uint32_t nlen;
        memset(&s, 0, sizeof s);
        NEED(4);
        nlen = rd32(b + pos);
        pos += 4;
        if (nlen > ATH_SNAPSHOT_MAX_NAME) BAD("section name too long");
        NEED(nlen + 1u);
        memcpy(s.name, b + pos, nlen);
        s.name[nlen] = 0;
        if (strlen(s.name) != nlen) BAD("section name holds a NUL byte");
        pos += nlen;
        if (b[pos] == 0) {
            uint64_t m;
            pos++;
            NEED(8);
            m = rd64(b + pos);
            pos += 8;
            NEED(m);
            if (strcmp(s.name, "meta") != 0) BAD("unexpected JSON section");
            s.is_json = 1;
            s.data = b + pos;
            s.nbytes = (size_t)m;
            pos += (size_t)m;
            have_meta = 1;
        } else if (b[pos] == 1) {
            uint64_t nb, count = 1;
            int d;
            size_t isz;
            pos++;
            NEED(2);
            s.dtype = b[pos];
            s.ndim = b[pos + 1];
            pos += 2;
            isz = ath_snap_dtype_size(s.dtype);
            if (isz == 0 || s.ndim > ATH_SNAPSHOT_MAX_NDIM) BAD("array with a bad dtype code or ndim");
            NEED(8u * (unsigned)s.ndim + 8u);
            for (d = 0; d < s.ndim; d++) {
                const uint64_t v = rd64(b + pos + 8u * (unsigned)d);
                if (v > ((uint64_t)1 << 40)) BAD("array dimension out of range");
                s.shape[d] = (int64_t)v;
                if (v != 0 && count > ((uint64_t)1 << 60) / v) BAD("array too large");
                count *= v;
            }
            pos += 8u * (unsigned)s.ndim;
            nb = rd64(b + pos);
            pos += 8;
            if (count > ((uint64_t)1 << 60) / isz || count * isz != nb) BAD("array shape does not match its byte count");
            NEED(nb);
            s.data = b + pos;
            s.nbytes = (size_t)nb;
            pos += (size_t)nb;
        } else {
            BAD("section of unknown type");
        }
        if (n == cap) {
            ath_snap_section *bigger = (ath_snap_section *)ath_realloc(sec, 2 * cap * sizeof *sec);
            if (bigger == NULL) {
                ath_free(sec);
                return ath_error_set(err, ATH_ERR_NOMEM, "snapshot parse: out of memory");
            }
            sec = bigger;
            cap *= 2;
        }
        sec[n++] = s;
    }
    if (!have_meta) BAD("no meta section");
#undef NEED
#undef BAD
    *sections = sec;
    *n_sections = n;
    return ATH_OK;
}

ath_status ath_snapshot_encode(const ath_snap_section *sections, size_t n_sections, unsigned char **out,
                               size_t *out_len, ath_error *err) {
    size_t total = HEADER_SIZE + TRAILER_SIZE, i, pos;
    unsigned char *b;
    if (out == NULL || out_len == NULL || (sections == NULL && n_sections > 0))
        return ath_error_set(err, ATH_ERR_INVALID, "snapshot encode: NULL argument");
    for (i = 0; i < n_sections; i++) {
        const ath_snap_section *s = &sections[i];
        const size_t nl = strlen(s->name);
        if (nl > ATH_SNAPSHOT_MAX_NAME) return ath_error_set(err, ATH_ERR_INVALID, "snapshot encode: name too long");
        if (s->is_json) {
            total += 4 + nl + 1 + 8 + s->nbytes;
        } else {
            uint64_t count = 1;
            int d;
            const size_t isz = ath_snap_dtype_size(s->dtype);
            if (isz == 0 || s->ndim < 0 || s->ndim > ATH_SNAPSHOT_MAX_NDIM)
                return ath_error_set(err, ATH_ERR_INVALID, "snapshot encode: section '%s': bad dtype or ndim", s->name);
            for (d = 0; d < s->ndim; d++) count *= (uint64_t)s->shape[d];
            if (count * isz != s->nbytes)
                return ath_error_set(err, ATH_ERR_INVALID, "snapshot encode: section '%s': shape and bytes differ", s->name);
            total += 4 + nl + 1 + 2 + 8u * (unsigned)s->ndim + 8 + s->nbytes;
        }
    }
    b = (unsigned char *)ath_malloc(total);
    if (b == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "snapshot encode: out of memory");
    memcpy(b, MAGIC, 8);
    wr32(b + 8, ATH_SNAPSHOT_VERSION);
    wr32(b + 12, 0);
    wr64(b + 16, (uint64_t)(total - HEADER_SIZE - TRAILER_SIZE));
    pos = HEADER_SIZE;
    for (i = 0; i < n_sections; i++) {
        const ath_snap_section *s = &sections[i];
        const size_t nl = strlen(s->name);
        int d;
        wr32(b + pos, (uint32_t)nl);
        memcpy(b + pos + 4, s->name, nl);
        pos += 4 + nl;
        b[pos++] = s->is_json ? 0 : 1;
        if (!s->is_json) {
            b[pos++] = (unsigned char)s->dtype;
            b[pos++] = (unsigned char)s->ndim;
            for (d = 0; d < s->ndim; d++, pos += 8) wr64(b + pos, (uint64_t)s->shape[d]);
        }
        wr64(b + pos, (uint64_t)s->nbytes);
        pos += 8;
        if (s->nbytes) memcpy(b + pos, s->data, s->nbytes);
        pos += s->nbytes;
    }
    wr32(b + pos, ath_crc32(0, b, pos));
    memcpy(b + pos + 4, END_MAGIC, 8);
    *out = b;
    *out_len = total;
    return ATH_OK;
}

ath_status ath_snapshot_write_file(const char *path, const void *data, size_t len, ath_error *err) {
    char *tmp, *dir, *slash;
    size_t plen;
    int fd;
    const unsigned char *p = (const unsigned char *)data;
    size_t done = 0;
    if (path == NULL || (data == NULL && len > 0))
        return ath_error_set(err, ATH_ERR_INVALID, "snapshot write: NULL argument");
    plen = strlen(path);
    tmp = (char *)ath_malloc(plen + 32);
    dir = (char *)ath_malloc(plen + 2);
    if (tmp == NULL || dir == NULL) {
        ath_free(tmp);
        ath_free(dir);
        return ath_error_set(err, ATH_ERR_NOMEM, "snapshot write: out of memory");
    }
    snprintf(tmp, plen + 32, "%s.tmp-%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        const int e = errno;
        ath_free(tmp);
        ath_free(dir);
        return ath_error_set(err, ATH_ERR_IO, "snapshot %s: cannot create a temporary file: %s", path, strerror(e));
    }
    while (done < len) {
        const ssize_t w = write(fd, p + done, len - done);
        if (w < 0) {
            const int e = errno;
            if (e == EINTR) continue;
            close(fd);
            unlink(tmp);
            ath_free(tmp);
            ath_free(dir);
            return ath_error_set(err, ATH_ERR_IO, "snapshot %s: write failed: %s", path, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        const int e = errno;
        unlink(tmp);
        ath_free(tmp);
        ath_free(dir);
        return ath_error_set(err, ATH_ERR_IO, "snapshot %s: fsync/close failed: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        ath_free(tmp);
        ath_free(dir);
        return ath_error_set(err, ATH_ERR_IO, "snapshot %s: rename failed: %s", path, strerror(e));
    }
    /* the rename is durable once the directory entry is on disk */
    memcpy(dir, path, plen + 1);
    slash = strrchr(dir, '/');
    if (slash == NULL) {
        dir[0] = '.';
        dir[1] = 0;
    } else if (slash == dir) {
        dir[1] = 0;
    } else {
        *slash = 0;
    }
    fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    ath_free(tmp);
    ath_free(dir);
    return ATH_OK;
}

ath_status ath_snapshot_read_file(const char *path, unsigned char **out, size_t *out_len, ath_error *err) {
    FILE *f;
    unsigned char *b = NULL;
    size_t n = 0, cap = 0;
    if (path == NULL || out == NULL || out_len == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "snapshot read: NULL argument");
    f = fopen(path, "rb");
    if (f == NULL) return ath_error_set(err, ATH_ERR_IO, "snapshot %s: cannot read (%s)", path, strerror(errno));
    for (;;) {
        size_t got;
        if (n == cap) {
            unsigned char *bigger;
            cap = cap ? 2 * cap : 65536;
            bigger = (unsigned char *)ath_realloc(b, cap);
            if (bigger == NULL) {
                ath_free(b);
                fclose(f);
                return ath_error_set(err, ATH_ERR_NOMEM, "snapshot %s: out of memory", path);
            }
            b = bigger;
        }
        got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        ath_free(b);
        fclose(f);
        return ath_error_set(err, ATH_ERR_IO, "snapshot %s: read error", path);
    }
    fclose(f);
    *out = b;
    *out_len = n;
    return ATH_OK;
}

/* Pure-C tests of the snapshot container (src/core/snapshot.c), the matter walk
 * (ath_engine_visit_matter) and the analysis (src/core/analysis.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atheria/alloc.h"
#include "atheria/analysis.h"
#include "atheria/engine.h"
#include "atheria/snapshot.h"
#include "check.h"

static void test_crc(void) {
    CHECK(ath_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value");
    CHECK(ath_crc32(0, "", 0) == 0u, "crc32 of nothing");
}

static unsigned char *make(size_t *len) {
    static const char meta[] = "{\"engine\": \"Engine\", \"step\": 3}";
    static const int64_t ints[6] = {1, -2, 3, -4, 5, 6};
    static const float fl[2] = {0.5f, -1.25f};
    ath_snap_section s[3];
    unsigned char *out = NULL;
    ath_error err;
    memset(s, 0, sizeof s);
    strcpy(s[0].name, "meta");
    s[0].is_json = 1;
    s[0].data = (const unsigned char *)meta;
    s[0].nbytes = strlen(meta);
    strcpy(s[1].name, "coords");
    s[1].dtype = ATH_SNAP_I64;
    s[1].ndim = 2;
    s[1].shape[0] = 2;
    s[1].shape[1] = 3;
    s[1].data = (const unsigned char *)ints;
    s[1].nbytes = sizeof ints;
    strcpy(s[2].name, "f");
    s[2].dtype = ATH_SNAP_F32;
    s[2].ndim = 1;
    s[2].shape[0] = 2;
    s[2].data = (const unsigned char *)fl;
    s[2].nbytes = sizeof fl;
    CHECK(ath_snapshot_encode(s, 3, &out, len, &err) == ATH_OK, "encode: %s", err.message);
    return out;
}

static void test_round_trip(void) {
    size_t len = 0, n = 0, cut;
    unsigned char *buf = make(&len), *copy;
    ath_snap_section *sec = NULL;
    ath_snap_problem p;
    ath_error err;
    int64_t v;
    CHECK(ath_snapshot_parse(buf, len, "t.snap", &sec, &n, &p, &err) == ATH_OK, "parse: %s", err.message);
    CHECK(n == 3 && sec[0].is_json && strcmp(sec[1].name, "coords") == 0 && sec[1].shape[1] == 3, "sections");
    memcpy(&v, sec[1].data + 8, sizeof v);
    CHECK(v == -2, "array data");
    ath_free(sec);
    /* every truncation is refused, none reads outside the buffer (ASan run) */
    for (cut = 0; cut < len; cut++) {
        copy = (unsigned char *)malloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        sec = NULL;
        CHECK(ath_snapshot_parse(copy, cut, "t.snap", &sec, &n, &p, &err) == ATH_ERR_IO &&
                  (p == ATH_SNAP_TRUNCATED || p == ATH_SNAP_FOREIGN) && sec == NULL,
              "cut at %zu: problem %d", cut, (int)p);
        free(copy);
    }
    /* every single-byte change is refused (the CRC covers header and body) */
    for (cut = 0; cut < len; cut++) {
        copy = (unsigned char *)malloc(len);
        memcpy(copy, buf, len);
        copy[cut] ^= 0x5A;
        sec = NULL;
        CHECK(ath_snapshot_parse(copy, len, "t.snap", &sec, &n, &p, &err) != ATH_OK && sec == NULL,
              "flip at %zu accepted", cut);
        CHECK(strstr(err.message, "t.snap") != NULL, "message names the file: %s", err.message);
        free(copy);
    }
    /* a newer version is named as such (its CRC is recomputed, as a newer writer would) */
    copy = (unsigned char *)malloc(len);
    memcpy(copy, buf, len);
    copy[8] = 2;
    {
        const uint32_t crc = ath_crc32(0, copy, len - 12);
        copy[len - 12] = (unsigned char)crc;
        copy[len - 11] = (unsigned char)(crc >> 8);
        copy[len - 10] = (unsigned char)(crc >> 16);
        copy[len - 9] = (unsigned char)(crc >> 24);
    }
    CHECK(ath_snapshot_parse(copy, len, "t.snap", &sec, &n, &p, &err) == ATH_ERR_IO && p == ATH_SNAP_NEWER,
          "newer: %d", (int)p);
    free(copy);
    ath_free(buf);
}

static void test_files(void) {
    char path[256];
    size_t len = 0, len2 = 0;
    unsigned char *buf = make(&len), *back = NULL;
    ath_error err;
    snprintf(path, sizeof path, "/tmp/ath_test_snapshot_%ld.snap", (long)getpid());
    CHECK(ath_snapshot_write_file(path, buf, len, &err) == ATH_OK, "write: %s", err.message);
    CHECK(ath_snapshot_read_file(path, &back, &len2, &err) == ATH_OK && len2 == len && memcmp(back, buf, len) == 0,
          "read back");
    ath_free(back);
    unlink(path);
    CHECK(ath_snapshot_read_file(path, &back, &len2, &err) == ATH_ERR_IO, "missing file");
    CHECK(ath_snapshot_write_file("/nonexistent-dir/x.snap", buf, len, &err) == ATH_ERR_IO, "bad dir");
    ath_free(buf);
}

typedef struct {
    size_t n;
} count_ctx;

static ath_status count_visit(void *ctx, const ath_coord *c, const ath_cf32 *s, size_t n, ath_error *err) {
    (void)c;
    (void)s;
    (void)err;
    ((count_ctx *)ctx)->n += n;
    return ATH_OK;
}

static ath_status stop_visit(void *ctx, const ath_coord *c, const ath_cf32 *s, size_t n, ath_error *err) {
    (void)ctx;
    (void)c;
    (void)s;
    (void)n;
    return ath_error_set(err, ATH_ERR_MODEL, "stop");
}

static void test_visit_and_analysis(void) {
    ath_engine_config cfg;
    ath_engine *e = NULL;
    ath_error err;
    enum { N = 20000 };
    ath_coord *cs = (ath_coord *)malloc(N * sizeof *cs);
    ath_cf32 *vs = (ath_cf32 *)malloc(N * 2 * sizeof *vs);
    int i;
    double energy = 0.0, ce[2];
    ath_analysis a;
    count_ctx cx = {0};
    ath_roi roi = {10, 10, 30, 20, 0}, big = {-1000, -1000, 1000, 1000, 0};
    ath_engine_config_default(&cfg, 2);
    cfg.background = ATH_BACKGROUND_ZERO;
    CHECK(ath_engine_create(&cfg, &e, &err) == ATH_OK, "create");
    for (i = 0; i < N; i++) {
        cs[i] = ath_coord_make(i % 200, i / 200, 0);
        vs[2 * i].re = (float)(i % 7) * 0.25f;
        vs[2 * i].im = -0.5f;
        vs[2 * i + 1].re = 0.125f;
        vs[2 * i + 1].im = (float)(i % 3);
        energy += (double)vs[2 * i].re * vs[2 * i].re + 0.25 + 0.125 * 0.125 + (double)(i % 3) * (i % 3);
    }
    CHECK(ath_engine_add_particles(e, N, cs, vs, &err) == ATH_OK, "add");
    CHECK(ath_engine_visit_matter(e, NULL, count_visit, &cx, &err) == ATH_OK && cx.n == N, "all matter %zu", cx.n);
    cx.n = 0;
    CHECK(ath_engine_visit_matter(e, &roi, count_visit, &cx, &err) == ATH_OK && cx.n == 200, "roi (lookups) %zu", cx.n);
    cx.n = 0;
    CHECK(ath_engine_visit_matter(e, &big, count_visit, &cx, &err) == ATH_OK && cx.n == N, "roi (scan) %zu", cx.n);
    CHECK(ath_engine_visit_matter(e, NULL, stop_visit, NULL, &err) == ATH_ERR_MODEL, "visitor stops the walk");
    CHECK(ath_analyze_engine(e, NULL, &a, ce, &err) == ATH_OK, "analyze");
    CHECK(a.matter_count == N && fabs(a.energy - energy) <= 1e-9 * energy, "energy %g vs %g", a.energy, energy);
    CHECK(a.bbox[0] == 0 && a.bbox[1] == 0 && a.bbox[2] == 200 && a.bbox[3] == N / 200, "bbox");
    {
        int64_t total = 0;
        for (i = 0; i < ATH_ANALYSIS_BINS; i++) total += a.hist_counts[i];
        CHECK(total == N, "histogram counts every cell");
    }
    CHECK(ath_engine_set_step_count(e, 41, &err) == ATH_OK && ath_engine_step_count(e) == 41, "set step");
    CHECK(ath_engine_set_step_count(e, -1, &err) == ATH_ERR_INVALID && ath_engine_step_count(e) == 41, "negative step");
    ath_engine_destroy(e);
    free(cs);
    free(vs);
}

int main(void) {
    test_crc();
    test_round_trip();
    test_files();
    test_visit_and_analysis();
    return check_summary();
}

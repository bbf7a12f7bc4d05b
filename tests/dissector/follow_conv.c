/* What Wireshark's Analyze > Follow does on a selected packet, without the GUI: load the plugins (from
 * WIRESHARK_PLUGIN_DIR), read a capture once through libwiretap and dissect every frame (the first pass,
 * with a tree as the GUI builds for its colouring rules), then dissect frames again (visited, with a
 * visible tree, as when a packet is selected) and ask the Spark follower's conversation filter about each.
 *
 *   follow_conv [-o PREF:VALUE]... [-n FIRST] CAPTURE
 *
 * One line per frame of the second pass: "NUMBER<TAB>FILTER<TAB>STREAM<TAB>LAYER", FILTER and STREAM "-"
 * when the filter is NULL, LAYER 1 when "spark" is among the frame's protocols (what the GUI checks before
 * it calls the filter). -n: the first pass stops after FIRST frames (the others are then dissected only as
 * visited frames, as if the first pass had not reached them). Exit 1 with one line on any failure. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <epan/epan.h>
#include <epan/epan_dissect.h>
#include <epan/follow.h>
#include <epan/frame_data.h>
#include <epan/packet.h>
#include <epan/prefs.h>
#include <epan/proto.h>
#include <epan/tvbuff.h>
#include <wiretap/wtap.h>
#include <wsutil/filesystem.h>
#include <wsutil/privileges.h>

#include "follow-conv-config.h"

/* The frames read so far, as a capture file keeps them. */
struct packet_provider_data {
    frame_data **frames;
    guint32 count;
};

typedef struct fc_file {
    wtap *wth;
    epan_t *epan;
    wtap_rec rec;
#if !FOLLOW_CONV_REC_HAS_DATA
    Buffer buf;
#endif
    struct packet_provider_data prov;
} fc_file;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "follow_conv: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static const nstime_t *fc_frame_ts(struct packet_provider_data *prov, guint32 num)
{
    return num >= 1 && num <= prov->count ? &prov->frames[num - 1]->abs_ts : NULL;
}

static void fc_init(char *argv0)
{
    char *err;

    init_process_policies();
#if FOLLOW_CONV_CONFIG_NAMESPACE
    err = configuration_init(argv0, "Wireshark");
#else
    err = configuration_init(argv0);
#endif
    if (err)
        fail("cannot find the program's folders", err);
    wtap_init(TRUE);
    if (!epan_init(NULL, NULL, TRUE))
        fail("epan_init failed", NULL);
    epan_load_settings();
}

/* -o PREF:VALUE, as tshark takes them */
static void fc_pref(const char *arg)
{
    char *copy = g_strdup(arg), *errmsg = NULL;

    if (prefs_set_pref(copy, &errmsg) != PREFS_SET_OK)
        fail("bad preference (give NAME:VALUE)", arg);
    g_free(copy);
    g_free(errmsg);
}

static gboolean fc_read(fc_file *f, gint64 *offset, int *err, gchar **err_info)
{
#if FOLLOW_CONV_REC_HAS_DATA
    return wtap_read(f->wth, &f->rec, err, err_info, offset);
#else
    return wtap_read(f->wth, &f->rec, &f->buf, err, err_info, offset);
#endif
}

static void fc_reread(fc_file *f, const frame_data *fd)
{
    int err = 0;
    gchar *err_info = NULL;
#if FOLLOW_CONV_REC_HAS_DATA
    gboolean ok = wtap_seek_read(f->wth, fd->file_off, &f->rec, &err, &err_info);
#else
    gboolean ok = wtap_seek_read(f->wth, fd->file_off, &f->rec, &f->buf, &err, &err_info);
#endif
    if (!ok)
        fail("cannot read a frame again", err_info ? err_info : wtap_strerror(err));
}

static void fc_dissect(fc_file *f, epan_dissect_t *edt, frame_data *fd)
{
#if FOLLOW_CONV_REC_HAS_DATA
    epan_dissect_run(edt, wtap_file_type_subtype(f->wth), &f->rec, fd, NULL);
#else
    tvbuff_t *tvb = tvb_new_real_data(ws_buffer_start_ptr(&f->buf), fd->cap_len, fd->pkt_len);
    epan_dissect_run(edt, wtap_file_type_subtype(f->wth), &f->rec, tvb, fd, NULL);
#endif
}

static void fc_open(fc_file *f, const char *path)
{
    static const struct packet_provider_funcs funcs = { .get_frame_ts = fc_frame_ts };
    int err = 0;
    gchar *err_info = NULL;

    memset(f, 0, sizeof *f);
    f->wth = wtap_open_offline(path, WTAP_TYPE_AUTO, &err, &err_info, TRUE);
    if (!f->wth)
        fail(path, err_info ? err_info : wtap_strerror(err));
#if FOLLOW_CONV_REC_HAS_DATA
    wtap_rec_init(&f->rec, 1514);
#else
    wtap_rec_init(&f->rec);
    ws_buffer_init(&f->buf, 1514);
#endif
    f->epan = epan_new(&f->prov, &funcs);
}

/* The first pass over the whole file (or its first `first` frames), then the end of the sequential read;
 * the frames the pass did not reach are kept too, to be dissected later as visited ones. */
static void fc_first_pass(fc_file *f, guint32 first)
{
    epan_dissect_t *edt = epan_dissect_new(f->epan, TRUE, FALSE);
    const frame_data *ref = NULL, *prev_dis = NULL;
    nstime_t elapsed = NSTIME_INIT_ZERO;
    guint32 cum_bytes = 0;
    gint64 offset;
    int err = 0;
    gchar *err_info = NULL;

    while (fc_read(f, &offset, &err, &err_info)) {
        frame_data *fd = g_new0(frame_data, 1);
        f->prov.frames = g_renew(frame_data *, f->prov.frames, f->prov.count + 1);
        f->prov.frames[f->prov.count++] = fd;
        frame_data_init(fd, f->prov.count, &f->rec, offset, cum_bytes);
        if (first && f->prov.count > first) {
            fd->visited = 1;            /* shown as a frame already dissected, which this one never was */
        } else {
            frame_data_set_before_dissect(fd, &elapsed, &ref, prev_dis);
            fc_dissect(f, edt, fd);
            frame_data_set_after_dissect(fd, &cum_bytes);
            prev_dis = fd;
            epan_dissect_reset(edt);
        }
        wtap_rec_reset(&f->rec);
    }
    if (err)
        fail("cannot read the capture", err_info ? err_info : wtap_strerror(err));
    epan_dissect_free(edt);
    postseq_cleanup_all_protocols();
}

/* The packet selected again (visited, with a visible tree), then the follower's filter for it. */
static void fc_select(fc_file *f, register_follow_t *follower, frame_data *fd)
{
    epan_dissect_t *edt = epan_dissect_new(f->epan, TRUE, TRUE);
    guint stream = G_MAXUINT, sub_stream = 0;
    gchar *filter;
    gboolean layer;

    fc_reread(f, fd);
    fc_dissect(f, edt, fd);
    layer = proto_is_frame_protocol(edt->pi.layers, "spark");
    filter = get_follow_conv_func(follower)(edt, &edt->pi, &stream, &sub_stream);
    if (filter)
        printf("%u\t%s\t%u\t%d\n", fd->num, filter, stream, layer ? 1 : 0);
    else
        printf("%u\t-\t-\t%d\n", fd->num, layer ? 1 : 0);
    g_free(filter);
    epan_dissect_free(edt);
    wtap_rec_reset(&f->rec);
}

static void fc_close(fc_file *f)
{
    for (guint32 i = 0; i < f->prov.count; i++) {
        frame_data_destroy(f->prov.frames[i]);
        g_free(f->prov.frames[i]);
    }
    g_free(f->prov.frames);
    epan_free(f->epan);
    wtap_rec_cleanup(&f->rec);
#if !FOLLOW_CONV_REC_HAS_DATA
    ws_buffer_free(&f->buf);
#endif
    wtap_close(f->wth);
}

/* epan_cleanup() unloads the plugins: what the plugin fetched from OpenSSL once for the process (kept to its
 * end) would then read as leaked. Kept loaded, as at the end of a process that exits without cleaning up,
 * so that a leak check at exit sees only real leaks. */
static void fc_keep_plugin(void)
{
    char *path = g_build_filename(get_plugins_dir_with_version(), "epan", "spark.so", NULL);

    if (!dlopen(path, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE))
        fail("the Spark plugin was not loaded from", path);
    g_free(path);
}

static register_follow_t *fc_spark_follower(void)
{
    int proto = proto_get_id_by_filter_name("spark");
    register_follow_t *follower;

    if (proto < 0)
        fail("the Spark plugin is not loaded (set WIRESHARK_PLUGIN_DIR; not as root)", NULL);
    fc_keep_plugin();
    follower = get_follow_by_name(proto_get_protocol_short_name(find_protocol_by_id(proto)));
    if (!follower || get_follow_proto_id(follower) != proto || !get_follow_conv_func(follower))
        fail("the Spark plugin registers no follower", NULL);
    return follower;
}

int main(int argc, char **argv)
{
    register_follow_t *follower;
    guint32 first = 0;
    fc_file f;
    int i;

    fc_init(argv[0]);
    for (i = 1; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "-o") == 0)
            fc_pref(argv[i + 1]);
        else if (strcmp(argv[i], "-n") == 0)
            first = (guint32)strtoul(argv[i + 1], NULL, 10);
        else
            fail("unknown option", argv[i]);
    }
    if (i + 1 != argc)
        fail("usage: follow_conv [-o PREF:VALUE]... [-n FIRST] CAPTURE", NULL);
    prefs_apply_all();
    follower = fc_spark_follower();
    fc_open(&f, argv[i]);
    fc_first_pass(&f, first);
    for (guint32 n = 0; n < f.prov.count; n++)
        fc_select(&f, follower, f.prov.frames[n]);
    fc_close(&f);
    epan_cleanup();
    wtap_cleanup();
    return 0;
}

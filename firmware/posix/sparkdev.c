/* sparkdev: runs the sparkwire device stack on a POSIX host against a cloud (real or sparkcloud). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "device.h"
#include "keyfile.h"
#include "util.h"

#define MAX_EVENTS 8

typedef struct ev_spec {
    char name[SW_MAX_EVENT_NAME + 1];
    char data[SW_MAX_EVENT_DATA + 1];
    uint64_t period_ms;
    unsigned long count, sent;
    unsigned long ttl;
    bool is_private;
    uint64_t due;
} ev_spec;

typedef struct fn_spec {
    bool fixed;
    long result;
} fn_spec;

typedef struct var_value {
    bool b;
    int32_t i;
    double d;
    char s[SW_MAX_EVENT_DATA + 1];
} var_value;

static struct {
    int fd;
    uint64_t t0;
    int ota_fd;
    const char *ota_path;
    bool ota_error;
} rt = {-1, 0, -1, NULL, false};

static int hal_send(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    return sw_send_all(rt.fd, buf, len);
}

static int hal_recv(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    ssize_t n = recv(rt.fd, buf, len, MSG_DONTWAIT);
    if (n > 0)
        return (int)n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return -1;
}

static uint32_t hal_millis(void *ctx)
{
    (void)ctx;
    return (uint32_t)(sw_now_ms() - rt.t0);
}

static int hal_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static void notify(void *user, sw_note n, const char *name, long value)
{
    (void)user;
    switch (n) {
    case SW_NOTE_STEP:
        if (value == SW_STEP_NONCE)
            sw_log("nonce received");
        else if (value == SW_STEP_ID_BLOCK)
            sw_log("id block sent");
        else if (value == SW_STEP_SESSION_BLOCK)
            sw_log("session block decrypted, signature verified");
        else if (value == SW_STEP_HELLO)
            sw_log("hello sent");
        else if (value == SW_STEP_CONNECTED)
            sw_log("connected");
        break;
    case SW_NOTE_HANDSHAKE_FAILED: sw_log("handshake failed: %s", name); break;
    case SW_NOTE_SERVER_HELLO: sw_log("server hello (id 0x%04lx)", value); break;
    case SW_NOTE_DESCRIBE: sw_log("describe answered"); break;
    case SW_NOTE_FUNCTION: sw_log("function %s called, returned %ld", name, value); break;
    case SW_NOTE_VARIABLE: sw_log("variable %s read", name); break;
    case SW_NOTE_UNKNOWN_NAME: sw_log("unknown %s asked for", name); break;
    case SW_NOTE_TIME: sw_log("time from the cloud: %ld", value); break;
    case SW_NOTE_EVENT_SENT: sw_log("event %s published (%ld bytes of data)", name, value); break;
    case SW_NOTE_EVENT_RECEIVED: sw_log("event %s received (%ld bytes of data)", name, value); break;
    case SW_NOTE_SIGNAL: sw_log("signal %s", value ? "start" : "stop"); break;
    case SW_NOTE_PING_SENT: sw_log("ping sent (id 0x%04lx)", value); break;
    case SW_NOTE_PING_ANSWERED: sw_log("empty ack received (id 0x%04lx)", value); break;
    case SW_NOTE_SERVER_PING: sw_log("ping from the cloud answered"); break;
    case SW_NOTE_UPDATE_BEGIN: sw_log("update begins (%s)", name); break;
    case SW_NOTE_CHUNK: sw_log("chunk %ld %s", value, name); break;
    case SW_NOTE_UPDATE_DONE: sw_log("update done: %ld bytes", value); break;
    case SW_NOTE_IGNORED: sw_log("ignored: %s", name); break;
    case SW_NOTE_FRAME_ERROR: sw_log("frame error: %s (%ld)", name, value); break;
    case SW_NOTE_REFUSED: sw_log("the cloud answered message 0x%04lx with ACK 4.00; dropping the connection", value); break;
    }
}

static void ota_write(void *user, uint32_t offset, const uint8_t *data, size_t len)
{
    (void)user;
    if (rt.ota_fd < 0 || rt.ota_error)
        return;
    if (pwrite(rt.ota_fd, data, len, offset) != (ssize_t)len) {
        sw_err("update file %s: write failed (%s)", rt.ota_path, strerror(errno));
        rt.ota_error = true;
    }
}

static int fn_call(void *user, const char *arg)
{
    const fn_spec *f = user;
    return f->fixed ? (int)f->result : (int)strlen(arg);
}

static void on_event(void *user, const char *name, const uint8_t *data, size_t len)
{
    (void)user;
    sw_log("subscription matched event %s: %.*s", name, (int)len, data ? (const char *)data : "");
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: sparkdev [options] HOST:PORT\n"
"Runs the sparkwire device stack against a Spark cloud (use sparkcloud for a lab cloud on loopback).\n"
"\n"
"identity and keys:\n"
"  --id HEX              device id, 24 hex digits (required)\n"
"  --key FILE            device private key, RSA 1024 (PEM or DER) (required)\n"
"  --server-key FILE     server public key, RSA 2048 (SPKI DER/PEM, or the private key) (required)\n"
"  --keyfile FILE        take the device key (by --id) and the server public key from a keyfile\n"
"  --generation g1|g2|g3  g1: 52-byte id block, 13-byte Hello, no wait for the server Hello, keeps the\n"
"                        socket after a failed handshake; g2 (default): 214 bytes, 15-byte Hello,\n"
"                        waits 2 s for the server Hello, closes 250 ms after a failed handshake,\n"
"                        drops the connection on an ACK 4.00 and reconnects; g3 (Photon firmware\n"
"                        0.8): as g2, but little-endian message-id start, first token 0x01, Signal\n"
"                        ACK with its own id, 4 s Hello wait, waits for a second UpdateDone after\n"
"                        missed fast-OTA chunks\n"
"  --platform N          platform id in the Hello (default 0, the Core; 6 with g3, the Photon); 6 and 8\n"
"                        take frames up to 800 bytes, the Core 640\n"
"application:\n"
"  --function NAME[=R]   expose a function returning R (default: length of its argument)\n"
"  --variable NAME:TYPE:VALUE   expose a variable; TYPE bool, int, double or string\n"
"  --event NAME:DATA:PERIOD_MS:COUNT[:TTL[:private]]   publish COUNT times, every PERIOD_MS\n"
"  --subscribe PREFIX    subscribe to events (my devices only)\n"
"  --no-time             do not ask for the time after connecting\n"
"  --no-system-events    do not publish the spark/... events after connecting\n"
"  --ota-out FILE        write a received update image to FILE\n"
"  --no-fast-ota         refuse fast OTA when the cloud offers it\n"
"  --describe-twice 0.4|0.6  answer each Describe twice, as Photon firmware 0.4-0.5 (both parts, then the\n"
"                        application part) or 0.6.0 (system part, then application part) do\n"
"timing:\n"
"  --run-time SEC        close the connection after SEC seconds (default: run until it ends)\n"
"  --io-timeout MS       handshake read timeout (default 20000)\n"
"  --hello-timeout MS    g2 wait for the server Hello (default 2000)\n"
"  --ping-idle MS        ping after this long without receiving (default 15000)\n"
"  --ping-timeout MS     drop the connection when a ping is not answered (default 10000)\n"
"faults:\n"
"  --stop-after STEP     go silent after nonce, id-block, session-block or hello\n"
"  --on-fail close|hold  after a failed handshake close (g2 default) or keep the socket (g1 default)\n"
"  --corrupt-frame N     damage the N-th session frame sent (1 = the Hello)\n"
"  --ota-stall-after N   go silent after N update chunks\n"
"  -h, --help            this text\n"
"  --version             the version\n"
"\n"
"\n"
"After an ACK 4.00 a g2 device reconnects at once, for the rest of --run-time.\n"
"exit status: 0 session ended normally, 1 connection failed or dropped, 2 bad usage or keys,\n"
"6 decryption error (device key mismatch), 8 signature error, 9 no server Hello.\n");
}

static int bad(const char *opt, const char *val, const char *fix)
{
    sw_err("option %s: bad value '%s'; %s", opt, val, fix);
    return 2;
}

/* Splits s at ':' into at most n fields (in place); returns the field count. */
static int split(char *s, char **f, int n)
{
    int k = 0;
    f[k++] = s;
    for (char *p = s; *p && k < n; p++) {
        if (*p == ':') {
            *p = 0;
            f[k++] = p + 1;
        }
    }
    return k;
}

enum {
    O_ID = 256, O_KEY, O_SKEY, O_GEN, O_PLATFORM, O_FUNC, O_VAR, O_EVENT, O_SUB, O_NOTIME, O_NOSYS, O_OTAOUT,
    O_RUN, O_KEYFILE, O_IOT, O_HELLOT, O_PINGI, O_PINGT, O_STOP, O_ONFAIL, O_CORRUPT, O_OTASTALL, O_NOFAST,
    O_DESC2,
};

static const struct option opts[] = {
    {"id", required_argument, 0, O_ID}, {"key", required_argument, 0, O_KEY},
    {"server-key", required_argument, 0, O_SKEY}, {"generation", required_argument, 0, O_GEN},
    {"platform", required_argument, 0, O_PLATFORM}, {"function", required_argument, 0, O_FUNC},
    {"variable", required_argument, 0, O_VAR}, {"event", required_argument, 0, O_EVENT},
    {"subscribe", required_argument, 0, O_SUB}, {"no-time", no_argument, 0, O_NOTIME},
    {"no-system-events", no_argument, 0, O_NOSYS}, {"ota-out", required_argument, 0, O_OTAOUT},
    {"run-time", required_argument, 0, O_RUN}, {"keyfile", required_argument, 0, O_KEYFILE},
    {"io-timeout", required_argument, 0, O_IOT}, {"hello-timeout", required_argument, 0, O_HELLOT},
    {"ping-idle", required_argument, 0, O_PINGI}, {"ping-timeout", required_argument, 0, O_PINGT},
    {"stop-after", required_argument, 0, O_STOP}, {"on-fail", required_argument, 0, O_ONFAIL},
    {"corrupt-frame", required_argument, 0, O_CORRUPT}, {"ota-stall-after", required_argument, 0, O_OTASTALL},
    {"no-fast-ota", no_argument, 0, O_NOFAST}, {"describe-twice", required_argument, 0, O_DESC2},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};

/* Everything the command line says. */
static struct {
    fn_spec fns[SW_MAX_FUNCTIONS];
    char fn_names[SW_MAX_FUNCTIONS][SW_MAX_NAME + 1];
    var_value vars[SW_MAX_VARIABLES];
    char var_names[SW_MAX_VARIABLES][SW_MAX_NAME + 1];
    sw_var_type var_types[SW_MAX_VARIABLES];
    ev_spec evs[MAX_EVENTS];
    char sub_prefix[SW_MAX_SUBSCRIPTIONS][SW_MAX_EVENT_NAME + 1];
    size_t nfns, nvars, nevs, nsubs;
    const char *id_hex, *key_path, *skey_path, *keyfile_path;
    int generation;
    long platform;
    bool no_time, no_sys, no_fast;
    uint64_t run_ms;
    long io_t, hello_t, ping_i, ping_t;
    sw_step stop_after;
    int on_fail;
    unsigned long corrupt, ota_stall;
    int describe_twice;
    char host[256], port[16];
} o = {.generation = 2, .platform = -1, .io_t = -1, .hello_t = -1, .ping_i = -1, .ping_t = -1, .on_fail = -1};

static int function_option(const char *arg)
{
    if (o.nfns >= SW_MAX_FUNCTIONS)
        return bad("--function", arg, "at most 4 functions");
    const char *eq = strchr(arg, '=');
    size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
    if (nl == 0 || nl > SW_MAX_NAME)
        return bad("--function", arg, "the name must have 1 to 12 characters");
    memcpy(o.fn_names[o.nfns], arg, nl);
    o.fn_names[o.nfns][nl] = 0;
    if (eq) {
        char *end;
        errno = 0;
        long r = strtol(eq + 1, &end, 10);
        if (errno || *end || eq[1] == 0 || r < INT32_MIN || r > INT32_MAX)
            return bad("--function", arg, "the result must be a 32-bit integer");
        o.fns[o.nfns].fixed = true;
        o.fns[o.nfns].result = r;
    }
    o.nfns++;
    return -1;
}

/* TYPE:VALUE of a variable into v; false when the value does not fit the type. */
static bool variable_value(const char *type, const char *val, var_value *v, sw_var_type *t)
{
    char *end = NULL;
    errno = 0;
    if (strcmp(type, "bool") == 0) {
        *t = SW_VAR_BOOL;
        v->b = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
        return v->b || strcmp(val, "false") == 0 || strcmp(val, "0") == 0;
    }
    if (strcmp(type, "int") == 0) {
        *t = SW_VAR_INT;
        long x = strtol(val, &end, 10);
        v->i = (int32_t)x;
        return !errno && *end == 0 && val[0] && x >= INT32_MIN && x <= INT32_MAX;
    }
    if (strcmp(type, "double") == 0) {
        *t = SW_VAR_DOUBLE;
        v->d = strtod(val, &end);
        return !errno && *end == 0 && val[0];
    }
    if (strcmp(type, "string") == 0) {
        *t = SW_VAR_STRING;
        snprintf(v->s, sizeof v->s, "%s", val);
        return strlen(val) <= SW_MAX_EVENT_DATA;
    }
    return false;
}

static int variable_option(const char *arg)
{
    if (o.nvars >= SW_MAX_VARIABLES)
        return bad("--variable", arg, "at most 10 variables");
    char *f[3];
    char *copy = strdup(arg);
    if (copy == NULL || split(copy, f, 3) != 3) {
        free(copy);
        return bad("--variable", arg, "use NAME:TYPE:VALUE");
    }
    bool name_ok = strlen(f[0]) >= 1 && strlen(f[0]) <= SW_MAX_NAME;
    snprintf(o.var_names[o.nvars], sizeof o.var_names[o.nvars], "%s", f[0]);
    bool ok = name_ok && variable_value(f[1], f[2], &o.vars[o.nvars], &o.var_types[o.nvars]);
    free(copy);
    if (!name_ok)
        return bad("--variable", arg, "the name must have 1 to 12 characters");
    if (!ok)
        return bad("--variable", arg, "TYPE is bool, int, double or string and VALUE must fit it");
    o.nvars++;
    return -1;
}

static int event_option(const char *arg)
{
    if (o.nevs >= MAX_EVENTS)
        return bad("--event", arg, "at most 8 events");
    char *f[6];
    char *copy = strdup(arg);
    int k = copy ? split(copy, f, 6) : 0;
    ev_spec *e = &o.evs[o.nevs];
    unsigned long per = 0;
    int ok = k >= 4 && strlen(f[0]) >= 1 && strlen(f[0]) <= SW_MAX_EVENT_NAME && strlen(f[1]) <= SW_MAX_EVENT_DATA &&
             sw_parse_ulong(f[2], 0, 86400000, &per) == 0 && sw_parse_ulong(f[3], 1, 100000, &e->count) == 0;
    e->ttl = 60;
    if (ok && k >= 5 && f[4][0])
        ok = sw_parse_ulong(f[4], 0, 0xFFFFFF, &e->ttl) == 0;
    if (ok && k >= 6)
        ok = strcmp(f[5], "private") == 0 || strcmp(f[5], "public") == 0;
    if (ok) {
        snprintf(e->name, sizeof e->name, "%s", f[0]);
        snprintf(e->data, sizeof e->data, "%s", f[1]);
        e->period_ms = per;
        e->is_private = k >= 6 && strcmp(f[5], "private") == 0;
    }
    free(copy);
    if (!ok)
        return bad("--event", arg, "use NAME:DATA:PERIOD_MS:COUNT[:TTL[:private|public]] (name <= 63, data <= 255 "
                   "bytes)");
    o.nevs++;
    return -1;
}

/* Options with a word or a number: generation, platform, timers, faults. */
static int setting_option(int c, const char *name, const char *arg)
{
    static const char *gens[] = {"g1", "1", "g2", "2", "g3", "3"};
    static const char *steps[] = {"nonce", "id-block", "session-block", "hello"};
    unsigned long ul;
    switch (c) {
    case O_GEN:
        for (int i = 0; i < 6; i++)
            if (strcmp(arg, gens[i]) == 0)
                return o.generation = i / 2 + 1, -1;
        return bad("--generation", arg, "use g1, g2 or g3");
    case O_PLATFORM:
        if (sw_parse_ulong(arg, 0, 65535, &ul) < 0)
            return bad("--platform", arg, "give a number 0..65535");
        return o.platform = (long)ul, -1;
    case O_IOT: case O_HELLOT: case O_PINGI: case O_PINGT:
        if (sw_parse_ulong(arg, 1, 3600000, &ul) < 0)
            return bad(name, arg, "give milliseconds, 1..3600000");
        *(c == O_IOT ? &o.io_t : c == O_HELLOT ? &o.hello_t : c == O_PINGI ? &o.ping_i : &o.ping_t) = (long)ul;
        return -1;
    case O_STOP:
        for (int i = 0; i < 4; i++)
            if (strcmp(arg, steps[i]) == 0)
                return o.stop_after = (sw_step)(SW_STEP_NONCE + i), -1;
        return bad("--stop-after", arg, "use nonce, id-block, session-block or hello");
    case O_ONFAIL:
        if (strcmp(arg, "close") != 0 && strcmp(arg, "hold") != 0)
            return bad("--on-fail", arg, "use close or hold");
        return o.on_fail = strcmp(arg, "hold") == 0, -1;
    case O_CORRUPT:
        return sw_parse_ulong(arg, 1, 1000000, &o.corrupt) < 0 ? bad(name, arg, "give a frame number from 1") : -1;
    case O_OTASTALL:
        return sw_parse_ulong(arg, 1, 1000000, &o.ota_stall) < 0 ? bad(name, arg, "give a chunk count from 1") : -1;
    case O_RUN:
        return sw_parse_seconds(arg, &o.run_ms) < 0 ? bad(name, arg, "give seconds, e.g. 5 or 0.5") : -1;
    case O_DESC2:
        if (strcmp(arg, "0.4") != 0 && strcmp(arg, "0.6") != 0)
            return bad(name, arg, "use 0.4 (firmware 0.4-0.5) or 0.6 (firmware 0.6.0)");
        return o.describe_twice = arg[2] - '0', -1;
    default:
        return -1;
    }
}

/* One option; -1 to go on, else the exit status. */
static int one_option(int c, int longindex, int argc, char **argv)
{
    char name[40];
    snprintf(name, sizeof name, "--%s", longindex >= 0 ? opts[longindex].name : "help");
    switch (c) {
    case 'h': usage(stdout); return 0;
    case 'V': printf("sparkdev (sparkwire) %s\n", SPARKWIRE_VERSION); return 0;
    case O_ID: o.id_hex = optarg; return -1;
    case O_KEY: o.key_path = optarg; return -1;
    case O_SKEY: o.skey_path = optarg; return -1;
    case O_KEYFILE: o.keyfile_path = optarg; return -1;
    case O_FUNC: return function_option(optarg);
    case O_VAR: return variable_option(optarg);
    case O_EVENT: return event_option(optarg);
    case O_SUB:
        if (o.nsubs >= SW_MAX_SUBSCRIPTIONS || strlen(optarg) == 0 || strlen(optarg) > SW_MAX_EVENT_NAME)
            return bad("--subscribe", optarg, "at most 4 prefixes of 1 to 63 characters");
        snprintf(o.sub_prefix[o.nsubs++], sizeof o.sub_prefix[0], "%s", optarg);
        return -1;
    case O_NOTIME: o.no_time = true; return -1;
    case O_NOSYS: o.no_sys = true; return -1;
    case O_NOFAST: o.no_fast = true; return -1;
    case O_OTAOUT: rt.ota_path = optarg; return -1;
    case O_GEN: case O_PLATFORM: case O_IOT: case O_HELLOT: case O_PINGI: case O_PINGT: case O_STOP:
    case O_ONFAIL: case O_CORRUPT: case O_OTASTALL: case O_RUN: case O_DESC2:
        return setting_option(c, name, optarg);
    default:
        sw_bad_option(c, argc, argv);
        return 2;
    }
}

static int parse_options(int argc, char **argv)
{
    int c, r, longindex = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, &longindex)) != -1) {
        if ((r = one_option(c, longindex, argc, argv)) >= 0)
            return r;
        longindex = -1;
    }
    if (optind != argc - 1) {
        sw_err(optind >= argc ? "no cloud address; give HOST:PORT (see --help)"
                              : "too many arguments; give one HOST:PORT (see --help)");
        return 2;
    }
    if (sw_split_hostport(argv[optind], o.host, sizeof o.host, o.port, sizeof o.port) < 0) {
        sw_err("cloud address '%s': not HOST:PORT; e.g. 127.0.0.1:5683", argv[optind]);
        return 2;
    }
    if (o.id_hex == NULL || (o.keyfile_path == NULL && (o.key_path == NULL || o.skey_path == NULL))) {
        sw_err("missing %s; see --help", o.id_hex == NULL ? "--id" : o.key_path == NULL ? "--key (or --keyfile)"
                                                                                        : "--server-key (or --keyfile)");
        return 2;
    }
    return -1;
}

/* The device key (by --id) and the server public key from the keyfile, where no file option gave them. */
static int keys_from_keyfile(const uint8_t id[SW_DEVICE_ID_LEN], sw_keybuf *dkey, sw_keybuf *skey)
{
    sw_keyfile *kf = sw_keyfile_open(o.keyfile_path);
    if (kf == NULL)
        return 2;
    int bad_dev = o.key_path == NULL && sw_keyfile_device_private(kf, id, dkey) < 0;
    int bad_srv = o.skey_path == NULL && sw_keyfile_server_public(kf, skey) < 0;
    sw_keyfile_close(kf);
    if (bad_dev) {
        sw_err("keyfile %s: no device line for %s; add 'device %s keys/FILE' or give --key", o.keyfile_path,
               o.id_hex, o.id_hex);
        return 2;
    }
    if (bad_srv) {
        sw_err("keyfile %s: no server-public or server-private line; add one or give --server-key", o.keyfile_path);
        return 2;
    }
    if (o.key_path == NULL)
        o.key_path = o.keyfile_path;
    if (o.skey_path == NULL)
        o.skey_path = o.keyfile_path;
    return -1;
}

static int load_keys(sw_device_config *cfg, sw_keybuf *dkey, sw_keybuf *skey)
{
    int r;
    if (o.keyfile_path && (r = keys_from_keyfile(cfg->device_id, dkey, skey)) >= 0)
        return r;
    if ((o.key_path != o.keyfile_path && sw_load_private_key(o.key_path, "device key", dkey) < 0) ||
        (o.skey_path != o.keyfile_path && sw_load_public_key(o.skey_path, "server key", skey) < 0))
        return 2;
    if (dkey->bits != 1024) {
        sw_err("device key %s: RSA %d bits; a Spark device key is RSA 1024", o.key_path, dkey->bits);
        return 2;
    }
    if (skey->bits != 2048) {
        sw_err("server key %s: RSA %d bits; the Spark cloud key is RSA 2048", o.skey_path, skey->bits);
        return 2;
    }
    cfg->private_key = dkey->der;
    cfg->private_key_len = dkey->len;
    cfg->server_key = skey->der;
    cfg->server_key_len = skey->len;
    return -1;
}

static int make_config(sw_device_config *cfg, sw_keybuf *dkey, sw_keybuf *skey)
{
    sw_device_defaults(cfg, o.generation);
    if (sw_parse_hex(o.id_hex, cfg->device_id, SW_DEVICE_ID_LEN) < 0) {
        sw_err("device id '%s': not 24 hex digits; e.g. 55ff6d065075555332071787", o.id_hex);
        return 2;
    }
    int r = load_keys(cfg, dkey, skey);
    if (r >= 0)
        return r;
    cfg->platform_id = (uint16_t)(o.platform >= 0 ? o.platform : o.generation >= 3 ? 6 : 0);
    if (o.io_t > 0) cfg->io_timeout_ms = (uint32_t)o.io_t;
    if (o.hello_t > 0) cfg->hello_timeout_ms = (uint32_t)o.hello_t;
    if (o.ping_i > 0) cfg->ping_idle_ms = (uint32_t)o.ping_i;
    if (o.ping_t > 0) cfg->ping_timeout_ms = (uint32_t)o.ping_t;
    cfg->stop_after = o.stop_after;
    if (o.on_fail >= 0) cfg->hold_on_fail = o.on_fail == 1;
    cfg->corrupt_frame = (uint32_t)o.corrupt;
    cfg->ota_stall_after = (uint32_t)o.ota_stall;
    cfg->send_time_request = !o.no_time;
    cfg->fast_ota = !o.no_fast;
    cfg->describe_twice = (uint8_t)o.describe_twice;
    cfg->notify = notify;
    cfg->ota_write = ota_write;
    return -1;
}

/* 0, or the exit status when the cloud cannot be reached. */
static int connect_cloud(void)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(o.host, o.port, &hints, &ai);
    if (gai != 0) {
        sw_err("cloud address %s: %s", o.host, gai_strerror(gai));
        return 1;
    }
    rt.fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (rt.fd < 0 || connect(rt.fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        sw_err("connect to %s:%s failed: %s; is the cloud running?", o.host, o.port, strerror(errno));
        freeaddrinfo(ai);
        if (rt.fd >= 0)
            close(rt.fd);
        return 1;
    }
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(rt.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* each frame leaves when written */
    sw_log("connected to %s:%s as %s (g%d)", o.host, o.port, o.id_hex, o.generation);
    return 0;
}

static void register_application(sw_device *dev)
{
    for (size_t i = 0; i < o.nfns; i++)
        sw_device_function(dev, o.fn_names[i], fn_call, &o.fns[i]);
    for (size_t i = 0; i < o.nvars; i++) {
        const var_value *v = &o.vars[i];
        const void *p = o.var_types[i] == SW_VAR_BOOL ? (const void *)&v->b
                      : o.var_types[i] == SW_VAR_INT ? (const void *)&v->i
                      : o.var_types[i] == SW_VAR_DOUBLE ? (const void *)&v->d : (const void *)v->s;
        sw_device_variable(dev, o.var_names[i], o.var_types[i], p);
    }
    for (size_t i = 0; i < o.nsubs; i++)
        sw_device_subscribe(dev, o.sub_prefix[i], true, on_event, NULL);
}

/* Once connected: the system event of the generation, then the user events when due. */
static void publish_due(sw_device *dev, uint64_t t, bool *sys_sent)
{
    if (!*sys_sent) {
        *sys_sent = true;
        if (o.generation == 1)
            sw_device_publish(dev, "spark/cc3000-patch-version", (const uint8_t *)"1.28", 4, 60, false);
        else
            sw_device_publish(dev, "spark/hardware/max_binary", (const uint8_t *)"108000", 6, 60, false);
    }
    for (size_t i = 0; i < o.nevs; i++) {
        ev_spec *e = &o.evs[i];
        if (e->sent < e->count && t >= e->due &&
            sw_device_publish(dev, e->name, (const uint8_t *)e->data, strlen(e->data), (uint32_t)e->ttl,
                              e->is_private) == 0) {
            e->sent++;
            e->due = t + e->period_ms;
        }
    }
}

/* One connection, from the handshake until it ends or the run time is over. */
static sw_status run_connection(sw_device *dev)
{
    bool was_connected = false, sys_sent = o.no_sys;
    sw_status st = SW_RUNNING;
    sw_device_start(dev);
    while (st == SW_RUNNING) {
        sw_wait_readable(rt.fd, 5);
        st = sw_device_poll(dev);
        if (st != SW_RUNNING)
            break;
        uint64_t t = sw_now_ms();
        if (sw_device_connected(dev)) {
            if (!was_connected) {
                was_connected = true;
                for (size_t i = 0; i < o.nevs; i++)
                    if (o.evs[i].sent == 0)
                        o.evs[i].due = t;
            }
            publish_due(dev, t, &sys_sent);
        }
        if (o.run_ms && t - rt.t0 >= o.run_ms) {
            sw_log("run time over, closing");
            sw_device_stop(dev);
        }
    }
    close(rt.fd);
    return st;
}

static int report(sw_status st, const sw_device *dev, const sw_device_config *cfg)
{
    const char *step = sw_step_name(dev->step);
    switch (st) {
    case SW_FINISHED:
        sw_log("closed (last step: %s)", step);
        return 0;
    case SW_UPDATE_APPLIED:
        sw_log("update applied, closing to restart");
        return rt.ota_error ? 1 : 0;
    case SW_ERR_DECRYPTION:
        sw_err("handshake failed after %s: decryption error: the session block does not decrypt with the device "
               "key %s (the cloud holds another public key for %s, or the peer is not a Spark cloud) [code 6]", step,
               o.key_path, o.id_hex);
        return 6;
    case SW_ERR_AUTHENTICATION:
        sw_err("handshake failed after %s: signature error: the session block is not signed by the server key %s "
               "(impostor cloud or wrong server key) [code 8]", step, o.skey_path);
        return 8;
    case SW_ERR_MESSAGE_TIMEOUT:
        sw_err("no server Hello within %u ms after the device Hello; closing", cfg->hello_timeout_ms);
        return 9;
    case SW_ERR_SERVER_KEY:
        sw_err("server key %s cannot encrypt the id block; give the cloud's RSA 2048 public key", o.skey_path);
        return 2;
    case SW_ERR_CONFIG:
        sw_err("device key %s: cannot build the device public key or a message; give an RSA 1024 key", o.key_path);
        return 2;
    case SW_ERR_TIMEOUT:
        sw_err("handshake timed out after %s: nothing from the cloud within %u ms", step, cfg->io_timeout_ms);
        return 1;
    default:
        sw_err("connection ended after %s: %s", step, sw_status_text(st));
        return 1;
    }
}

int main(int argc, char **argv)
{
    sw_prog = "sparkdev";
    static sw_device dev;
    static sw_keybuf dkey, skey;
    sw_device_config cfg;
    int r = parse_options(argc, argv);
    if (r >= 0 || (r = make_config(&cfg, &dkey, &skey)) >= 0)
        return r;
    if (rt.ota_path) {
        rt.ota_fd = open(rt.ota_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (rt.ota_fd < 0) {
            sw_err("update file %s: cannot create (%s)", rt.ota_path, strerror(errno));
            return 2;
        }
    }
    sw_hal hal = {NULL, hal_send, hal_recv, hal_millis, hal_random};
    rt.t0 = sw_now_ms();
    sw_status st;
    for (;;) {
        if ((r = connect_cloud()) != 0)
            break;
        sw_device_init(&dev, &cfg, &hal);
        register_application(&dev);
        st = run_connection(&dev);
        /* G2 drops the connection on an ACK 4.00 and reconnects at once (the first back-off is 0 s) */
        if (st != SW_ERR_REFUSED || (o.run_ms && sw_now_ms() - rt.t0 >= o.run_ms))
            break;
        sw_log("connection dropped after an ACK 4.00; reconnecting");
    }
    if (rt.ota_fd >= 0)
        close(rt.ota_fd);
    return r != 0 ? r : report(st, &dev, &cfg);
}

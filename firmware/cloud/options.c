/* sparkcloud: the command line. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cloud.h"
#include "keyfile.h"

sc_options sc_opt;

static void usage(FILE *f)
{
    fprintf(f,
"usage: sparkcloud [options] [HOST:PORT]\n"
"A lab cloud for the Spark Core protocol (default 127.0.0.1:5683, loopback only unless told otherwise).\n"
"It serves connections until stopped (SIGINT or SIGTERM), one process each.\n"
"\n"
"keys:\n"
"  --server-key FILE      server private key, RSA 2048 (PEM or DER) (required)\n"
"  --keys-dir DIR         device public keys as DIR/<id>.pub.pem\n"
"  --device-key ID=FILE   the public key (or private key) of one device; repeatable\n"
"  --keyfile FILE         server private key and device keys from a keyfile (see docs/design.md)\n"
"session script (run in this order after the handshake):\n"
"  --describe[=PART]      ask the device to describe itself; PART system, application or both sends the\n"
"                         selection byte of firmware 0.6.1 and later (default: none, as the original cloud)\n"
"  --call NAME[=ARG]      call a function\n"
"  --read NAME            read a variable (typed from the last describe)\n"
"  --signal               ask the device to signal\n"
"  --send-event NAME[=DATA]  send an event to the device\n"
"  --ota FILE             push FILE as a firmware update (256-byte chunks with CRC-32)\n"
"  --ota-bad-crc N        send chunk N (from 0) with a wrong CRC once\n"
"  --ota-fast             offer fast OTA: chunks carry their index and go out without waiting\n"
"  --ota-skip-chunk N     fast OTA: leave chunk N out until the device asks for it (ChunkMissed)\n"
"  --ota-second-done      fast OTA: send UpdateDone again after the missed chunks (firmware 0.8 waits for\n"
"                         it; the original cloud never sends it)\n"
"  --session-time SEC     close the session SEC after the Hello (default: when the device closes)\n"
"  --script-delay SEC     wait SEC after the Hello before the script (default 0)\n"
"  --session-log FILE     append '<device id> <session material hex>' for each handshake\n"
"timers (seconds, as the real cloud):\n"
"  --id-timeout SEC       wait for the id block (default 30)\n"
"  --hello-timeout SEC    wait for the device Hello (default 30)\n"
"  --handshake-timeout SEC  the whole handshake (default 120)\n"
"  --reply-timeout SEC    wait for an answer to a request (default 10)\n"
"  --ota-timeout SEC      wait for an update answer (default 10)\n"
"faults:\n"
"  --wrong-key FILE       hold this public key for every device\n"
"  --sign-key FILE        sign session blocks with this private key (impostor)\n"
"  --captive-portal       answer with an HTTP redirect instead of the protocol\n"
"  --stall                send the nonce, then nothing\n"
"  --no-hello             do not send the server Hello\n"
"  --refuse-events N      answer the first N user events of each connection with ACK 4.00 (slow down)\n"
"running:\n"
"  --once                 handle one connection, then exit when it ends\n"
"  --connections N        handle N connections, then exit when they end (default: until stopped)\n"
"  --time-limit SEC       exit after SEC seconds whatever happens\n"
"  -h, --help             this text\n"
"  --version              the version\n"
"Logs one line per event to stderr; each connection ends with '#N outcome: WORD'.\n");
}

enum {
    O_SKEY = 256, O_KDIR, O_DKEY, O_DESCRIBE, O_CALL, O_READ, O_SIGNAL, O_SEVENT, O_OTA, O_OTABAD, O_SESSION,
    O_DELAY, O_SLOG, O_IDT, O_HELLOT, O_HST, O_REPLYT, O_OTAT, O_WRONG, O_SIGN, O_CAPTIVE, O_STALL, O_CONNS,
    O_LIMIT, O_NOHELLO, O_KEYFILE, O_OTAFAST, O_OTASKIP, O_REFUSE, O_ONCE, O_OTADONE2,
};

static const struct option opts[] = {
    {"server-key", required_argument, 0, O_SKEY}, {"keys-dir", required_argument, 0, O_KDIR},
    {"device-key", required_argument, 0, O_DKEY}, {"describe", optional_argument, 0, O_DESCRIBE},
    {"call", required_argument, 0, O_CALL}, {"read", required_argument, 0, O_READ},
    {"signal", no_argument, 0, O_SIGNAL}, {"send-event", required_argument, 0, O_SEVENT},
    {"ota", required_argument, 0, O_OTA}, {"ota-bad-crc", required_argument, 0, O_OTABAD},
    {"ota-fast", no_argument, 0, O_OTAFAST}, {"ota-skip-chunk", required_argument, 0, O_OTASKIP},
    {"ota-second-done", no_argument, 0, O_OTADONE2},
    {"session-time", required_argument, 0, O_SESSION}, {"script-delay", required_argument, 0, O_DELAY},
    {"session-log", required_argument, 0, O_SLOG}, {"id-timeout", required_argument, 0, O_IDT},
    {"hello-timeout", required_argument, 0, O_HELLOT}, {"handshake-timeout", required_argument, 0, O_HST},
    {"reply-timeout", required_argument, 0, O_REPLYT}, {"ota-timeout", required_argument, 0, O_OTAT},
    {"wrong-key", required_argument, 0, O_WRONG}, {"sign-key", required_argument, 0, O_SIGN},
    {"captive-portal", no_argument, 0, O_CAPTIVE}, {"stall", no_argument, 0, O_STALL},
    {"no-hello", no_argument, 0, O_NOHELLO}, {"refuse-events", required_argument, 0, O_REFUSE},
    {"keyfile", required_argument, 0, O_KEYFILE}, {"once", no_argument, 0, O_ONCE},
    {"connections", required_argument, 0, O_CONNS}, {"time-limit", required_argument, 0, O_LIMIT},
    {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};

static const char *ota_path, *keyfile_path;

static int bad(const char *opt_name, const char *val, const char *fix)
{
    sw_err("option %s: bad value '%s'; %s", opt_name, val, fix);
    return 2;
}

static sc_step *add_step(enum sc_step_kind k)
{
    if (sc_opt.nsteps >= SC_MAX_STEPS)
        return NULL;
    sc_step *s = &sc_opt.steps[sc_opt.nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = k;
    return s;
}

static int read_whole(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sw_err("update file %s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20;
    *data = malloc(cap);
    *len = *data ? fread(*data, 1, cap, f) : 0;
    bool more = *data && *len == cap;
    fclose(f);
    if (*data == NULL || *len == 0 || more) {
        sw_err("update file %s: %s", path, *len == 0 ? "empty or unreadable" : "larger than 1 MB");
        free(*data);
        *data = NULL;
        return -1;
    }
    return 0;
}

static int device_key_option(const char *arg)
{
    const char *eq = strchr(arg, '=');
    uint8_t idb[12];
    char idh[25];
    if (eq == NULL || eq - arg != 24 || sc_opt.ndevkeys >= SC_MAX_DEVKEYS)
        return bad("--device-key", arg, "use ID=FILE with a 24-hex-digit id (at most 16)");
    memcpy(idh, arg, 24);
    idh[24] = 0;
    if (sw_parse_hex(idh, idb, 12) < 0)
        return bad("--device-key", arg, "the id must be 24 hex digits");
    sw_to_hex(idb, 12, sc_opt.devkeys[sc_opt.ndevkeys].id);
    if (sw_load_public_key(eq + 1, "device key", &sc_opt.devkeys[sc_opt.ndevkeys].key) < 0)
        return 2;
    sc_opt.ndevkeys++;
    return -1;
}

/* --describe, --call, --read, --signal, --send-event, --ota: a script step. */
static int step_option(int ch, const char *oname, const char *arg)
{
    static const enum sc_step_kind kinds[] = {
        [O_DESCRIBE] = S_DESCRIBE, [O_CALL] = S_CALL, [O_READ] = S_READ, [O_SIGNAL] = S_SIGNAL,
        [O_SEVENT] = S_EVENT, [O_OTA] = S_OTA,
    };
    sc_step *s = add_step(kinds[ch]);
    if (s == NULL)
        return bad(oname, arg ? arg : "", "at most 16 script steps");
    if (ch == O_OTA)
        ota_path = arg;
    if (ch == O_DESCRIBE && arg) {
        static const char *parts[] = {"system", "application", "both"};
        for (int i = 0; i < 3 && !s->arg[0]; i++)
            if (strcmp(arg, parts[i]) == 0)
                s->arg[0] = (char)(i + 1);
        if (!s->arg[0])
            return bad(oname, arg, "use --describe, or --describe=system, application or both");
    }
    if (ch == O_READ) {
        if (strlen(arg) == 0 || strlen(arg) > 12)
            return bad("--read", arg, "give a variable name of 1 to 12 characters");
        snprintf(s->name, sizeof s->name, "%s", arg);
    }
    if (ch == O_CALL || ch == O_SEVENT) {
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        size_t maxn = ch == O_CALL ? 12 : 63;
        if (nl == 0 || nl > maxn || (eq && strlen(eq + 1) >= sizeof s->arg))
            return bad(oname, arg, ch == O_CALL ? "use NAME[=ARG], name of 1 to 12 characters"
                                                : "use NAME[=DATA], name of 1 to 63 characters");
        memcpy(s->name, arg, nl);
        s->name[nl] = 0;
        if (eq)
            snprintf(s->arg, sizeof s->arg, "%s", eq + 1);
    }
    return -1;
}

static uint64_t *seconds_target(int ch)
{
    switch (ch) {
    case O_SESSION: sc_opt.session_ms_set = true; return &sc_opt.session_ms;
    case O_DELAY: return &sc_opt.script_delay_ms;
    case O_IDT: return &sc_opt.id_timeout_ms;
    case O_HELLOT: return &sc_opt.hello_timeout_ms;
    case O_HST: return &sc_opt.handshake_timeout_ms;
    case O_REPLYT: return &sc_opt.reply_timeout_ms;
    case O_OTAT: return &sc_opt.ota_timeout_ms;
    case O_LIMIT: return &sc_opt.time_limit_ms;
    default: return NULL;
    }
}

/* Options with a number: chunk indexes, counts. */
static int number_option(int ch, const char *oname, const char *arg)
{
    unsigned long ul;
    switch (ch) {
    case O_OTABAD: case O_OTASKIP:
        if (sw_parse_ulong(arg, 0, 100000, &ul) < 0)
            return bad(oname, arg, "give a chunk index from 0");
        *(ch == O_OTABAD ? &sc_opt.ota_bad_chunk : &sc_opt.ota_skip_chunk) = (long)ul;
        return -1;
    case O_REFUSE:
        if (sw_parse_ulong(arg, 0, 100000, &sc_opt.refuse_events) < 0)
            return bad(oname, arg, "give a count of events from 0");
        return -1;
    case O_CONNS:
        if (sw_parse_ulong(arg, 1, 1000000, &sc_opt.connections) < 0)
            return bad(oname, arg, "give a count from 1 to 1000000");
        return -1;
    default:
        return -1;
    }
}

/* One option; -1 to go on, else the exit status. */
static int one_option(int ch, int longindex, int argc, char **argv)
{
    char oname[40];
    snprintf(oname, sizeof oname, "--%s", longindex >= 0 ? opts[longindex].name : "help");
    uint64_t *ms = seconds_target(ch);
    if (ms)
        return sw_parse_seconds(optarg, ms) < 0 ? bad(oname, optarg, "give seconds, e.g. 30 or 0.5") : -1;
    switch (ch) {
    case 'h': usage(stdout); return 0;
    case 'V': printf("sparkcloud (sparkwire) %s\n", SPARKWIRE_VERSION); return 0;
    case O_SKEY: sc_opt.server_key_path = optarg; return -1;
    case O_KDIR: sc_opt.keys_dir = optarg; return -1;
    case O_DKEY: return device_key_option(optarg);
    case O_DESCRIBE: case O_SIGNAL: case O_CALL: case O_SEVENT: case O_READ: case O_OTA:
        return step_option(ch, oname, optarg);
    case O_OTABAD: case O_OTASKIP: case O_REFUSE: case O_CONNS:
        return number_option(ch, oname, optarg);
    case O_OTAFAST: sc_opt.ota_fast = true; return -1;
    case O_OTADONE2: sc_opt.ota_second_done = true; return -1;
    case O_ONCE: sc_opt.connections = 1; return -1;
    case O_SLOG: sc_opt.session_log = optarg; return -1;
    case O_WRONG:
        if (sw_load_public_key(optarg, "wrong device key", &sc_opt.wrong_key) < 0)
            return 2;
        sc_opt.have_wrong_key = true;
        return -1;
    case O_SIGN:
        if (sw_load_private_key(optarg, "signing key", &sc_opt.sign_key) < 0)
            return 2;
        sc_opt.have_sign_key = true;
        return -1;
    case O_CAPTIVE: sc_opt.mode = M_CAPTIVE; return -1;
    case O_STALL: sc_opt.mode = M_STALL; return -1;
    case O_NOHELLO: sc_opt.no_hello = true; return -1;
    case O_KEYFILE: keyfile_path = optarg; return -1;
    default:
        sw_bad_option(ch, argc, argv);
        return 2;
    }
}

/* The server private key and device keys of a keyfile; true when it gave the server key. */
static int read_keyfile(bool *have_server_key)
{
    sw_keyfile *kf = sw_keyfile_open(keyfile_path);
    if (kf == NULL)
        return 2;
    if (sc_opt.server_key_path == NULL && sw_keyfile_server_private(kf, &sc_opt.server_key) == 0) {
        *have_server_key = true;
        sc_opt.server_key_path = keyfile_path;
    }
    for (size_t i = 0; i < sw_keyfile_device_count(kf) && sc_opt.ndevkeys < SC_MAX_DEVKEYS; i++)
        if (sw_keyfile_device_public(kf, i, sc_opt.devkeys[sc_opt.ndevkeys].id,
                                     &sc_opt.devkeys[sc_opt.ndevkeys].key) == 0)
            sc_opt.ndevkeys++;
    sw_keyfile_close(kf);
    return -1;
}

static int check_keys(bool have_server_key)
{
    if (sc_opt.server_key_path == NULL) {
        sw_err("missing --server-key; the cloud needs its RSA 2048 private key (or a keyfile with a "
               "server-private line) (see --help)");
        return 2;
    }
    if (!have_server_key && sw_load_private_key(sc_opt.server_key_path, "server key", &sc_opt.server_key) < 0)
        return 2;
    if (sc_opt.server_key.bits != 2048) {
        sw_err("server key %s: RSA %d bits; the Spark cloud key is RSA 2048", sc_opt.server_key_path,
               sc_opt.server_key.bits);
        return 2;
    }
    if (sc_opt.keys_dir == NULL && sc_opt.ndevkeys == 0 && !sc_opt.have_wrong_key)
        sw_err("warning: no --keys-dir or --device-key: every device will be unknown");
    struct stat st;
    if (sc_opt.keys_dir && (stat(sc_opt.keys_dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
        sw_err("keys directory %s: not a directory; give the folder holding <id>.pub.pem files", sc_opt.keys_dir);
        return 2;
    }
    return -1;
}

static void defaults(void)
{
    snprintf(sc_opt.host, sizeof sc_opt.host, "127.0.0.1");
    snprintf(sc_opt.port, sizeof sc_opt.port, "5683");
    sc_opt.connections = 0;
    sc_opt.id_timeout_ms = 30000;
    sc_opt.hello_timeout_ms = 30000;
    sc_opt.handshake_timeout_ms = 120000;
    sc_opt.reply_timeout_ms = 10000;
    sc_opt.ota_timeout_ms = 10000;
    sc_opt.ota_bad_chunk = -1;
    sc_opt.ota_skip_chunk = -1;
}

int sc_parse_options(int argc, char **argv)
{
    defaults();
    int ch, r, longindex = -1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, &longindex)) != -1) {
        if ((r = one_option(ch, longindex, argc, argv)) >= 0)
            return r;
        longindex = -1;
    }
    if (optind < argc - 1) {
        sw_err("too many arguments; give at most one HOST:PORT (see --help)");
        return 2;
    }
    if (optind == argc - 1 &&
        sw_split_hostport(argv[optind], sc_opt.host, sizeof sc_opt.host, sc_opt.port, sizeof sc_opt.port) < 0) {
        sw_err("listen address '%s': not HOST:PORT; e.g. 127.0.0.1:5683", argv[optind]);
        return 2;
    }
    bool have_server_key = false;
    if (keyfile_path && (r = read_keyfile(&have_server_key)) >= 0)
        return r;
    if (sc_opt.mode != M_CAPTIVE && (r = check_keys(have_server_key)) >= 0)
        return r;
    if (ota_path && read_whole(ota_path, &sc_opt.ota_data, &sc_opt.ota_len) < 0)
        return 2;
    return -1;
}

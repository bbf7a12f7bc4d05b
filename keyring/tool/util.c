/* sparkkeys: option parsing and argument checks shared by the commands. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

bool tool_parse_options(const tool_command *c, GOptionEntry *entries, int *argc, char ***argv)
{
    GOptionContext *ctx = g_option_context_new(c->params);
    g_option_context_set_summary(ctx, c->summary);
    if (entries)
        g_option_context_add_main_entries(ctx, entries, NULL);
    GError *gerr = NULL;
    bool ok = g_option_context_parse(ctx, argc, argv, &gerr);
    if (!ok) {
        fprintf(stderr, "%s %s: %s (see `%s %s --help`)\n", PROG, c->name, gerr->message, PROG, c->name);
        g_error_free(gerr);
    }
    g_option_context_free(ctx);
    return ok;
}

bool file_readable(const char *path, const char *what, kr_err *err)
{
    if (!kr_file_is_regular(path, what, err))
        return false;
    if (access(path, R_OK) != 0) {
        kr_err_set(err, "%s: cannot read: %s", path, strerror(errno));
        return false;
    }
    return true;
}

kr_role parse_role(const char *s, bool *ok)
{
    *ok = true;
    if (!s || !strcmp(s, "auto"))
        return KR_ROLE_ANY;
    if (!strcmp(s, "device") || !strcmp(s, "device-private"))
        return KR_ROLE_DEVICE_PRIVATE;
    if (!strcmp(s, "device-public"))
        return KR_ROLE_DEVICE_PUBLIC;
    if (!strcmp(s, "server") || !strcmp(s, "server-private"))
        return KR_ROLE_SERVER_PRIVATE;
    if (!strcmp(s, "server-public"))
        return KR_ROLE_SERVER_PUBLIC;
    *ok = false;
    return KR_ROLE_ANY;
}

bool valid_id(char *id)
{
    uint8_t raw[KR_DEVICE_ID_LEN];
    if (!id || strlen(id) != KR_DEVICE_ID_HEX_LEN || kr_unhex(id, raw, KR_DEVICE_ID_LEN) != 0)
        return false;
    for (char *p = id; *p; p++)
        *p = g_ascii_tolower(*p);
    return true;
}

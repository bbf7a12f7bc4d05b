/* Test helper: each line of standard input holds a string in hex; writes it as the JSON line
 * {"s":"...","n":LENGTH} with cloudmon's JSON writer, for test_json.py to check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

int main(void)
{
    char line[65536];
    unsigned char bytes[32768];
    cm_json j;
    cm_json_init(&j);
    while (fgets(line, sizeof line, stdin)) {
        size_t n = 0;
        for (char *p = line; p[0] && p[1] && p[0] != '\n'; p += 2) {
            unsigned v;
            if (sscanf(p, "%2x", &v) != 1 || n >= sizeof bytes)
                return 2;
            bytes[n++] = (unsigned char)v;
        }
        cm_json_reset(&j);
        cm_json_obj(&j, NULL);
        cm_json_strn(&j, "s", (const char *)bytes, n);
        cm_json_int(&j, "n", (int64_t)n);
        cm_json_num(&j, "x", -0.25);
        cm_json_time(&j, "t", 1700000000.5);
        cm_json_arr(&j, "a");
        cm_json_str(&j, NULL, "\"");
        cm_json_bool(&j, NULL, true);
        cm_json_end(&j, ']');
        cm_json_end(&j, '}');
        if (!cm_json_line(&j, stdout))
            return 1;
    }
    cm_json_free(&j);
    return 0;
}

/* sparkwire Wireshark plugin: the few Wireshark API differences between 4.0 and 4.6, chosen by the
 * build's compile checks against the installed headers (spark-config.h, see meson.build). */
#ifndef SPARK_COMPAT_H
#define SPARK_COMPAT_H

#include <stdbool.h>
#include <glib.h>
#include <epan/proto.h>
#include <epan/tvbuff.h>

#include "spark-config.h"

/* What a frame does seldom (a connection's start and end, TCP events, verdicts, findings, the notes of a
 * frame's rare part): out of the way of the code every frame runs, so that stays compact in the
 * instruction cache (GCC and Clang). */
#define SPARK_RARE __attribute__((cold))

/* the type behind a boolean preference */
#if SPARK_PREF_BOOL_IS_BOOL
typedef bool spark_pref_bool;
#else
typedef gboolean spark_pref_bool;
#endif

/* what a UAT record check returns */
#if SPARK_UAT_UPDATE_RETURNS_BOOL
typedef bool spark_uat_result;
#else
typedef gboolean spark_uat_result;
#endif

/* what a heuristic dissector returns */
#if SPARK_HEUR_RETURNS_BOOL
typedef bool spark_heur_result;
#else
typedef gboolean spark_heur_result;
#endif

static inline guint8 spark_tvb_u8(tvbuff_t *tvb, gint offset)
{
#if SPARK_HAVE_TVB_GET_UINT8
    return tvb_get_uint8(tvb, offset);
#else
    return tvb_get_guint8(tvb, offset);
#endif
}

static inline guint32 spark_field_uint(field_info *fi)
{
#if SPARK_FVALUE_IS_POINTER
    return fvalue_get_uinteger(fi->value);
#else
    return fvalue_get_uinteger(&fi->value);
#endif
}

#endif

/* cloudmon: decimal numbers written straight into a buffer, two digits at a time. Every number cloudmon
 * writes without printf goes through here: JSON values, times of day, the devices table. */
#ifndef CM_DIGITS_H
#define CM_DIGITS_H

#include <stdint.h>

#define CM_DIGITS_MAX 20   /* characters of the longest number: UINT64_MAX, or INT64_MIN with its '-' */

/* v as exactly width digits at p, zeros in front; digits of v beyond width are not written (callers pass
 * v < 10^width). No terminating 0. */
void cm_digits_fixed(char *p, uint64_t v, int width);

/* v in decimal, written to end just before end; returns its first character (at most CM_DIGITS_MAX
 * before end). No terminating 0. */
char *cm_digits_u64(char *end, uint64_t v);
/* The same for a signed v: a '-' in front when it is negative (INT64_MIN included). */
char *cm_digits_i64(char *end, int64_t v);

#endif

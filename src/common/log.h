/* log.h - leveled logging to stderr, shared by every gpupool part.
 *
 * The level comes from GPUPOOL_LOG (error, warn, info, debug; default warn).
 * A message is formatted into one buffer and written with a single write(2),
 * so lines from concurrent threads and processes never interleave.  Library
 * code (the hook, the simulator) prints only through here.
 */
#ifndef GP_COMMON_LOG_H
#define GP_COMMON_LOG_H

enum gp_log_level {
	GP_LOG_ERROR = 0, /* the operation failed; the user must act */
	GP_LOG_WARN = 1,  /* something is off but gpupool carries on */
	GP_LOG_INFO = 2,  /* one line per notable event (init, limits) */
	GP_LOG_DEBUG = 3, /* per-call detail; slow */
};

/* The current threshold; messages above it are dropped.  Read directly by
 * GP_LOG_ON() so that a disabled debug line costs one load and a branch. */
extern int gp__log_level;

#define GP_LOG_ON(lvl) ((int)(lvl) <= gp__log_level)

/* Parse "error"/"warn"/"info"/"debug" (case-insensitive).  Returns 0 and
 * stores the level, or -EINVAL for anything else (NULL included). */
int gp_log_parse_level(const char *s, enum gp_log_level *out)
	__attribute__((warn_unused_result));

/* Set the threshold and the tag printed in front of every line (e.g.
 * "hook"); the tag must outlive the program (a literal). */
void gp_log_setup(enum gp_log_level lvl, const char *tag);

/* Format and write one line: "gpupool[<tag> <pid>] <level>: <msg>\n". */
void gp_log(enum gp_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define gp_error(...) gp_log(GP_LOG_ERROR, __VA_ARGS__)
#define gp_warn(...)                                                         \
	do {                                                                     \
		if (GP_LOG_ON(GP_LOG_WARN))                                          \
			gp_log(GP_LOG_WARN, __VA_ARGS__);                                \
	} while (0)
#define gp_info(...)                                                         \
	do {                                                                     \
		if (GP_LOG_ON(GP_LOG_INFO))                                          \
			gp_log(GP_LOG_INFO, __VA_ARGS__);                                \
	} while (0)
#define gp_debug(...)                                                        \
	do {                                                                     \
		if (GP_LOG_ON(GP_LOG_DEBUG))                                         \
			gp_log(GP_LOG_DEBUG, __VA_ARGS__);                               \
	} while (0)

#endif

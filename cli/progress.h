/*
 * progress.h - a one-line progress display for long commands, drawn on a
 * terminal (normally stderr) and silent otherwise.
 *
 *     rv_progress p;
 *     rv_progress_init(&p, stderr, rv_progress_wanted(stderr, quiet), "import");
 *     rv_progress_set_total(&p, rows);              // if known
 *     ... rv_progress_update(&p, rows_done);        // cheap; redraws <= 10x/s
 *     opts.progress = rv_progress_library; opts.progress_ctx = &p;
 *     rv_progress_finish(&p);                       // erases the line
 *
 * The line shows rows done (of the total when known, with a bar and the
 * percentage), the rate, the elapsed time and, with a total, the time left;
 * while the library reports a long phase (graph insert, checkpoint) its
 * name and progress are appended. The line is cut to the terminal width so
 * it never wraps.
 *
 * Not thread-safe: update from one thread.
 */
#ifndef RV_CLI_PROGRESS_H
#define RV_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct rv_progress {
	FILE *out;
	bool enabled;
	char label[32];
	uint64_t done;      /* rows done */
	uint64_t total;     /* rows in all, when total_known */
	bool total_known;
	bool rows;          /* rv_progress_update was called: show rows */
	char phase[48];     /* library phase ("" = none) */
	uint64_t phase_done, phase_total;
	double start;       /* rv_now() at init */
	double last_draw;
	bool drawn;         /* a line is on the screen */
} rv_progress;

/* Whether to draw on out: it is a terminal and the user did not ask for
 * quiet. */
bool rv_progress_wanted(FILE *out, bool quiet);

/* Columns of the terminal behind f, else $COLUMNS, else 80. */
int rv_term_width(FILE *f);

void rv_progress_init(rv_progress *p, FILE *out, bool enabled, const char *label);
void rv_progress_set_total(rv_progress *p, uint64_t total);
void rv_progress_update(rv_progress *p, uint64_t done);
/* Library phase: what, done of total. */
void rv_progress_phase(rv_progress *p, const char *what, uint64_t done, uint64_t total);
/* rv_progress_fn adapter: ctx is an rv_progress. */
int rv_progress_library(void *ctx, const char *what, uint64_t done, uint64_t total);
/* Erase the line (the summary goes to stdout afterwards). */
void rv_progress_finish(rv_progress *p);

/* The line itself, for a given state, elapsed time and width; buf gets at
 * most width-1 characters (and at most cap-1). Separate so tests can check
 * the text without a terminal. */
void rv_progress_format(char *buf, size_t cap, const rv_progress *p, double elapsed, int width);

/* "0:07", "12:30", "1:02:03"; "-" for a negative or non-finite time. */
void rv_format_duration(char *buf, size_t cap, double seconds);
/* "950", "81.3k", "2.50M": three significant digits with a suffix. */
void rv_format_rate(char *buf, size_t cap, double per_second);

#endif /* RV_CLI_PROGRESS_H */

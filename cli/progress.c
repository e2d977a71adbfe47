/*
 * progress.c - the progress line (see progress.h).
 *
 * Drawing is "\r" + line + "erase to end of line", so each redraw replaces
 * the previous one without scrolling; redraws are limited to ten a second
 * because a terminal write costs far more than a row of import. The line is
 * composed from its fixed parts first and the bar gets whatever width is
 * left, so narrow terminals lose the bar before they lose the numbers.
 */
#include "progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/util.h"

#define REDRAW_SECONDS 0.1
#define BAR_MIN 10
#define BAR_MAX 30

bool rv_progress_wanted(FILE *out, bool quiet) { return !quiet && isatty(fileno(out)); }

int rv_term_width(FILE *f)
{
	struct winsize ws;
	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	const char *c = getenv("COLUMNS");
	int n = c ? atoi(c) : 0;
	return n > 0 ? n : 80;
}

void rv_format_duration(char *buf, size_t cap, double seconds)
{
	if (!(seconds >= 0) || !isfinite(seconds) || seconds > 1e9) {
		snprintf(buf, cap, "-");
		return;
	}
	unsigned long long s = (unsigned long long)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, cap, "%llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, cap, "%llu:%02llu", s / 60, s % 60);
}

void rv_format_rate(char *buf, size_t cap, double v)
{
	static const char *suffix[] = { "", "k", "M", "G", "T" };
	int i = 0;
	if (!isfinite(v) || v < 0)
		v = 0;
	while (v >= 999.5 && i < 4) {
		v /= 1000;
		i++;
	}
	if (i == 0)
		snprintf(buf, cap, "%.0f", v);
	else
		snprintf(buf, cap, "%.*f%s", v < 9.995 ? 2 : v < 99.95 ? 1 : 0, v, suffix[i]);
}

void rv_progress_format(char *buf, size_t cap, const rv_progress *p, double elapsed, int width)
{
	char head[64], nums[96], tail[160], phase[96] = "", rate[32], el[32], eta[32];
	if (cap == 0)
		return;
	if (width < 20)
		width = 20;
	snprintf(head, sizeof head, "%s", p->label);

	nums[0] = tail[0] = 0;
	bool bar = false;
	double frac = 0;
	if (p->rows) {
		double r = elapsed > 0 ? (double)p->done / elapsed : 0;
		rv_format_rate(rate, sizeof rate, r);
		rv_format_duration(el, sizeof el, elapsed);
		if (p->total_known && p->total > 0) {
			frac = (double)p->done / (double)p->total;
			if (frac > 1)
				frac = 1;
			double left = r > 0 ? (double)(p->total - (p->done < p->total ? p->done : p->total)) / r : -1;
			rv_format_duration(eta, sizeof eta, left);
			snprintf(nums, sizeof nums, " %5.1f%% %llu/%llu rows", frac * 100,
				 (unsigned long long)p->done, (unsigned long long)p->total);
			snprintf(tail, sizeof tail, "  %s rows/s  %s elapsed  ETA %s", rate, el, eta);
			bar = true;
		} else {
			snprintf(nums, sizeof nums, " %llu rows", (unsigned long long)p->done);
			snprintf(tail, sizeof tail, "  %s rows/s  %s elapsed", rate, el);
		}
	}
	if (p->phase[0]) {
		if (p->phase_total > 0)
			snprintf(phase, sizeof phase, "%s%s %.0f%%", p->rows ? "  | " : ": ", p->phase,
				 100.0 * (double)(p->phase_done < p->phase_total ? p->phase_done : p->phase_total) /
					 (double)p->phase_total);
		else
			snprintf(phase, sizeof phase, "%s%s %llu", p->rows ? "  | " : ": ", p->phase,
				 (unsigned long long)p->phase_done);
	}

	size_t fixed = strlen(head) + strlen(nums) + strlen(tail) + strlen(phase);
	size_t room = (size_t)width - 1;
	int bar_w = 0;
	/* " [" + bar + "]" */
	if (bar && fixed + 3 + BAR_MIN <= room) {
		bar_w = (int)(room - fixed - 3);
		if (bar_w > BAR_MAX)
			bar_w = BAR_MAX;
	}
	char barbuf[BAR_MAX + 4] = "";
	if (bar_w > 0) {
		int fill = (int)(frac * bar_w + 0.5);
		barbuf[0] = ' ';
		barbuf[1] = '[';
		for (int i = 0; i < bar_w; i++)
			barbuf[2 + i] = i < fill ? '#' : '.';
		barbuf[2 + bar_w] = ']';
		barbuf[3 + bar_w] = 0;
	}
	snprintf(buf, cap, "%s%s%s%s%s", head, barbuf, nums, tail, phase);
	if (strlen(buf) > room)
		buf[room] = 0;
}

static void draw(rv_progress *p, bool force)
{
	if (!p->enabled)
		return;
	double now = rv_now();
	if (!force && p->drawn && now - p->last_draw < REDRAW_SECONDS)
		return;
	char line[512];
	rv_progress_format(line, sizeof line, p, now - p->start, rv_term_width(p->out));
	fprintf(p->out, "\r%s\x1b[K", line);
	fflush(p->out);
	p->last_draw = now;
	p->drawn = true;
}

void rv_progress_init(rv_progress *p, FILE *out, bool enabled, const char *label)
{
	memset(p, 0, sizeof *p);
	p->out = out;
	p->enabled = enabled;
	snprintf(p->label, sizeof p->label, "%s", label);
	p->start = rv_now();
}

void rv_progress_set_total(rv_progress *p, uint64_t total)
{
	p->total = total;
	p->total_known = true;
}

void rv_progress_update(rv_progress *p, uint64_t done)
{
	p->rows = true;
	p->done = done;
	/* A row count means the library's phase is over. */
	p->phase[0] = 0;
	draw(p, false);
}

void rv_progress_phase(rv_progress *p, const char *what, uint64_t done, uint64_t total)
{
	bool changed = strncmp(p->phase, what ? what : "", sizeof p->phase - 1) != 0;
	snprintf(p->phase, sizeof p->phase, "%s", what ? what : "");
	p->phase_done = done;
	p->phase_total = total;
	draw(p, changed);
}

int rv_progress_library(void *ctx, const char *what, uint64_t done, uint64_t total)
{
	rv_progress_phase(ctx, what, done, total);
	return 0;
}

void rv_progress_finish(rv_progress *p)
{
	if (p->enabled && p->drawn) {
		fputs("\r\x1b[K", p->out);
		fflush(p->out);
	}
	p->drawn = false;
}

/*
 * test_crash.c - a child process writes and commits in a loop and is
 * killed with SIGKILL at random moments, many times over the same file.
 * After each kill the file must open, hold every commit the child
 * acknowledged (exact vectors, deletes applied), and verify clean.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util/util.h"

#define DIM 8
#define BATCH 5
#define ROUNDS 30
#define MAX_BATCHES 4000

static void vec_for(const char *id, float *v)
{
	uint64_t h = rv_hash64(id, strlen(id), 42);
	rv_rng r;
	rv_rng_seed(&r, h);
	for (int d = 0; d < DIM; d++)
		v[d] = (float)rv_rng_uniform(&r);
}

static void batch_id(char *buf, size_t cap, int round, int batch, int j)
{
	snprintf(buf, cap, "r%d-b%d-%d", round, batch, j);
}

/* The child: batch b upserts ids r-b-0..4 and deletes r-(b-1)-0, commits,
 * then reports b on the pipe. Runs until killed. */
static void child(const char *path, int round, int fd)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.threads = 1;
	rv_db *db = NULL;
	if (rv_db_open(&db, path, &o) != RV_OK) {
		fprintf(stderr, "child open: %s\n", rv_errmsg(db));
		_exit(3);
	}
	for (int b = 0; b < MAX_BATCHES; b++) {
		char ids[BATCH][32];
		float v[BATCH][DIM];
		rv_point p[BATCH];
		for (int j = 0; j < BATCH; j++) {
			batch_id(ids[j], 32, round, b, j);
			vec_for(ids[j], v[j]);
			p[j] = (rv_point){ .id = ids[j], .vector = v[j], .payload = "{\"k\":1}" };
		}
		if (rv_db_upsert(db, p, BATCH) != RV_OK)
			_exit(4);
		if (b > 0) {
			char del[32];
			batch_id(del, 32, round, b - 1, 0);
			const char *dp = del;
			if (rv_db_delete(db, &dp, 1, NULL) != RV_OK)
				_exit(5);
		}
		if (rv_db_commit(db) != RV_OK) {
			fprintf(stderr, "child commit: %s\n", rv_errmsg(db));
			_exit(6);
		}
		int32_t ack = b;
		if (write(fd, &ack, 4) != 4)
			_exit(7);
	}
	rv_db_close(db);
	_exit(0);
}

static int check_present(rv_db *db, const char *id)
{
	float want[DIM], got[DIM];
	vec_for(id, want);
	rv_status st = rv_db_get(db, id, got, NULL);
	if (st == RV_ENOTFOUND)
		return 0;
	if (st != RV_OK || memcmp(want, got, sizeof want) != 0)
		return -1;
	return 1;
}

TEST(kill9_loses_no_acknowledged_commit)
{
	const char *path = rv_test_path("crash.rvf");
	char p[1024];
	snprintf(p, sizeof p, "%s", path);
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = DIM;
	rv_db *db = NULL;
	CHECK_OK(rv_db_create(&db, p, &o), db);
	rv_db_close(db);

	int acked[ROUNDS];
	rv_rng rng;
	rv_rng_seed(&rng, 77);
	int total_acks = 0;
	for (int round = 0; round < ROUNDS; round++) {
		int fds[2];
		CHECK(pipe(fds) == 0);
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			child(p, round, fds[1]);
		}
		close(fds[1]);
		/* Let it run 2..60 ms, then kill it wherever it is. */
		usleep((useconds_t)(2000 + rv_rng_below(&rng, 58000)));
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		CHECK_MSG(WIFSIGNALED(status), "child exited by itself with %d", WEXITSTATUS(status));
		acked[round] = -1;
		int32_t a;
		while (read(fds[0], &a, 4) == 4)
			acked[round] = a;
		close(fds[0]);
		total_acks += acked[round] + 1;

		/* Every acknowledged commit, of this round and all before. */
		db = NULL;
		CHECK_OK(rv_db_open(&db, p, &o), db);
		for (int r = 0; r <= round; r++) {
			for (int b = 0; b <= acked[r]; b++) {
				for (int j = 0; j < BATCH; j++) {
					char id[32];
					batch_id(id, 32, r, b, j);
					int pres = check_present(db, id);
					CHECK_MSG(pres >= 0, "%s has a wrong vector", id);
					/* id b-0 is deleted by commit b+1. */
					if (j == 0 && b < acked[r])
						CHECK_MSG(pres == 0, "%s should be deleted", id);
					else if (j > 0)
						CHECK_MSG(pres == 1, "round %d: acknowledged %s missing", round, id);
					/* j == 0 of the last acknowledged batch: deleted only if
					 * the unacknowledged next commit made it. */
				}
			}
			/* The batch after the last acknowledged one may or may not
			 * have made it, but never in part. */
			int n = 0;
			for (int j = 0; j < BATCH; j++) {
				char id[32];
				batch_id(id, 32, r, acked[r] + 1, j);
				int pres = check_present(db, id);
				CHECK(pres >= 0);
				n += pres;
			}
			CHECK_MSG(n == 0 || n == BATCH, "round %d: commit %d half there (%d of %d)", r, acked[r] + 1, n,
				  BATCH);
		}
		rv_db_close(db);
		CHECK_MSG(rv_verify_file(p, NULL, NULL) == RV_OK, "round %d: file does not verify", round);
	}
	fprintf(stderr, "   %d kills, %d acknowledged commits checked\n", ROUNDS, total_acks);
	CHECK(total_acks > ROUNDS); /* the test really exercised commits */
}

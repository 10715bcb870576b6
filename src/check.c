/*
 * check: every fd of an offer against its entry. Two or three system
 * calls an fd are most of a large takeover's cost, so with many fds a
 * helper thread takes rows as they are received, and the caller joins in
 * once the last batch is in. Rows are taken in chunks under one mutex;
 * each row is written by the thread that took it, and read by the caller
 * only after check_finish has joined the helper.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Rows taken at a time: few lock round trips, an even share at the end. */
#define CHECK_CHUNK	32

/* Checks what the kernel says of row i's fd against what its entry says. */
static int
check_row(struct hlistener *l, const struct check_claim *c, char *err,
    size_t len)
{
	struct listener_id	id;

	if (listener_identify(l->fd, &id) == -1) {
		snprintf(err, len, "listener \"%s\": cannot tell what the fd "
		    "passed is: %s", l->name, strerror(errno));
		return -1;
	}
	if (strcmp(listener_family_name(id.family), c->family) != 0 ||
	    strcmp(listener_socktype_name(id.socktype), c->socktype) != 0 ||
	    strcmp(id.address, c->address) != 0 ||
	    id.listening != c->listening) {
		snprintf(err, len, "listener \"%s\": the fd is %s %s %s%s but "
		    "the offer says %s %s %s%s", l->name,
		    listener_family_name(id.family),
		    listener_socktype_name(id.socktype), id.address,
		    id.listening ? " listening" : "", c->family, c->socktype,
		    c->address, c->listening ? " listening" : "");
		return -1;
	}
	/* A socket is made non-blocking; other fds keep their flags, which
	 * their holders share. */
	if (id.family != AF_UNSPEC && hnonblock(l->fd) == -1) {
		snprintf(err, len, "listener \"%s\": cannot make it "
		    "non-blocking: %s", l->name, strerror(errno));
		return -1;
	}
	l->id = id;
	return 0;
}

/* Takes the next rows to check; 0 once there are none left to come,
 * or, unless wait is set, none published yet. */
static size_t
take_rows(struct checker *k, size_t *first, int wait)
{
	size_t	n;

	pthread_mutex_lock(&k->lock);
	while (wait && k->next == k->published && !k->done && !k->failed)
		pthread_cond_wait(&k->more, &k->lock);
	n = k->failed ? 0 : k->published - k->next;
	if (n > CHECK_CHUNK)
		n = CHECK_CHUNK;
	*first = k->next;
	k->next += n;
	pthread_mutex_unlock(&k->lock);
	return n;
}

/* Checks the next chunk of rows; 0 if there was none to take. */
static int
check_chunk(struct checker *k, int wait)
{
	char	err[HANDOFF_ERR_MAX];
	size_t	first, n, i;

	if ((n = take_rows(k, &first, wait)) == 0)
		return 0;
	for (i = first; i < first + n; i++)
		if (check_row(&k->o->l[i], &k->claims[i], err,
		    sizeof(err)) == -1)
			break;
	if (i < first + n) {
		pthread_mutex_lock(&k->lock);
		if (!k->failed || i < k->failed_row) {
			memcpy(k->err, err, sizeof(k->err));
			k->failed_row = i;
		}
		k->failed = 1;
		pthread_cond_broadcast(&k->more);
		pthread_mutex_unlock(&k->lock);
	}
	return 1;
}

static void *
helper_main(void *arg)
{
	while (check_chunk(arg, 1))
		;
	return NULL;
}

int
check_init(struct checker *k, struct adopt_set *o, int threaded)
{
	sigset_t	all, old;

	memset(k, 0, sizeof(*k));
	k->o = o;
	if ((k->claims = calloc(o->count + 1, sizeof(*k->claims))) == NULL)
		return -1;
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->more, NULL);
	if (!threaded)
		return 0;
	/* The application's signals stay with the application's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	k->helped = pthread_create(&k->helper, NULL, helper_main, k) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

char *
check_claim(struct checker *k, size_t i, const char *name,
    const char *family, const char *socktype, const char *address,
    int listening)
{
	struct check_claim	*c = &k->claims[i];
	const char		*in[4] = { name, family, socktype, address };
	char			*out[4], *p;

	if ((p = hpack(in, out, 4)) == NULL)
		return NULL;
	c->family = out[1];
	c->socktype = out[2];
	c->address = out[3];
	c->listening = listening;
	return p;	/* out[0], the name */
}

void
check_publish(struct checker *k, size_t n)
{
	pthread_mutex_lock(&k->lock);
	k->published = n;
	pthread_cond_signal(&k->more);
	pthread_mutex_unlock(&k->lock);
}

int
check_some(struct checker *k)
{
	return check_chunk(k, 0);
}

int
check_failed(struct checker *k)
{
	int	failed;

	pthread_mutex_lock(&k->lock);
	failed = k->failed;
	pthread_mutex_unlock(&k->lock);
	return failed;
}

int
check_finish(struct checker *k, char *err, size_t len)
{
	pthread_mutex_lock(&k->lock);
	k->done = 1;
	pthread_cond_broadcast(&k->more);
	pthread_mutex_unlock(&k->lock);
	while (check_chunk(k, 1))
		;
	if (k->helped)
		pthread_join(k->helper, NULL);
	if (k->failed)
		snprintf(err, len, "%s", k->err);
	pthread_cond_destroy(&k->more);
	pthread_mutex_destroy(&k->lock);
	free(k->claims);
	k->claims = NULL;
	return k->failed ? -1 : 0;
}
